# Stand-in for the official Prometheus image (base-images.sh): this machine's prometheus (Debian's package),
# on debian:bookworm-slim with wget for compose's health check, laid out as the official image is: the
# server as the entrypoint, data in /prometheus, run as nobody.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/*
COPY prometheus /bin/prometheus
RUN mkdir -p /prometheus /etc/prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
