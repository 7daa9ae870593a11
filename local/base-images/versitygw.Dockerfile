# Stand-in for the official versitygw image (base-images.sh): the versitygw binary `make versitygw` installs
# (the version compose names), on debian:bookworm-slim with wget for compose's health check.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/*
COPY versitygw /usr/local/bin/versitygw
ENTRYPOINT ["/usr/local/bin/versitygw"]
