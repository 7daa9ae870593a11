#!/bin/sh
# Entrypoint of the worker image. In ECS the broker credentials arrive as RABBITMQ_USERNAME and
# RABBITMQ_PASSWORD (injected from Secrets Manager, never in the task definition) next to RABBITMQ_ENDPOINT
# (amqps://host:5671); this builds RABBITMQ_URL from them, URL-escaped, removes the parts from the
# environment and starts the worker. A RABBITMQ_URL that is already set is used as it is.
set -eu

if [ -z "${RABBITMQ_URL:-}" ] && [ -n "${RABBITMQ_ENDPOINT:-}" ]; then
  if [ -z "${RABBITMQ_USERNAME:-}" ] || [ -z "${RABBITMQ_PASSWORD:-}" ]; then
    echo "docker-entrypoint: RABBITMQ_ENDPOINT is set but RABBITMQ_USERNAME or RABBITMQ_PASSWORD is not" >&2
    exit 2
  fi
  RABBITMQ_URL="$(python3 -c '
import os, sys, urllib.parse as p
e = p.urlsplit(os.environ["RABBITMQ_ENDPOINT"])
if not e.scheme or not e.hostname or e.username:
    sys.exit("docker-entrypoint: RABBITMQ_ENDPOINT must look like amqps://host:5671, without credentials")
user = p.quote(os.environ["RABBITMQ_USERNAME"], safe="")
password = p.quote(os.environ["RABBITMQ_PASSWORD"], safe="")
print(e._replace(netloc=user + ":" + password + "@" + e.netloc).geturl())
')"
  export RABBITMQ_URL
fi
unset RABBITMQ_USERNAME RABBITMQ_PASSWORD

exec "${WORKER_BIN:-/usr/local/bin/worker}" "$@"
