# Stand-in for the official python slim image (base-images.sh): Debian bookworm's python3 (3.11), with venv
# (ensurepip) and pip, as the official image has, so the worker can build per-script virtual environments.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
 && ln -s /usr/bin/python3 /usr/local/bin/python \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*
CMD ["python3"]
