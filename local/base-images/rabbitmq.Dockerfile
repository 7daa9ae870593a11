# Stand-in for the official rabbitmq management image (base-images.sh): Debian bookworm's rabbitmq-server
# (3.10), laid out as the official image is: configuration in /etc/rabbitmq (conf.d/ and enabled_plugins),
# data in /var/lib/rabbitmq, the node named rabbit@<hostname>, run in the foreground as the rabbitmq user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \
 && mkdir -p /etc/rabbitmq/conf.d \
 && printf 'loopback_users.guest = false\nlisteners.tcp.default = 5672\nmanagement.tcp.port = 15672\n' > /etc/rabbitmq/conf.d/10-defaults.conf \
 && echo '[rabbitmq_management,rabbitmq_prometheus].' > /etc/rabbitmq/enabled_plugins \
 && chown -R rabbitmq:rabbitmq /etc/rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
ENV RABBITMQ_LOGS=- RABBITMQ_CONFIG_FILES=/etc/rabbitmq/conf.d
USER rabbitmq
WORKDIR /var/lib/rabbitmq
EXPOSE 4369 5672 15672 15692 25672
# The server itself, not Debian's /usr/sbin wrapper (which sends the log to /var/log/rabbitmq/startup_log).
CMD ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
