#!/bin/sh
# The compose stack's least-privilege broker users (issue 11), run once by the rabbitmq-users service with
# rabbitmqctl against the first node. The platform's processes never use an administrator:
#
#   scrape-gateway     the gateway: configure/write/read limited to the task queue's names
#                      (^<task>(\..*)?$: the queue, .dlx, .dead, .cancel, .lease, .webhooks*), server-named
#                      queues (amq.gen-*), the default exchange (write) and direct reply-to (read)
#   scrape-worker      the workers: the same resources (they declare the topology, consume, reply)
#   scrape-monitoring  the queue-depth function: tags monitoring and policymaker, no AMQP resource
#   scrape-status      the gateway's GET /status (in_flight, capacity): tag monitoring alone (reads the
#                      management API, can set no policy), no AMQP resource
#   scrape-admin       for people (the management UI): administrator
#
# Passwords are generated on the first run and kept in the broker-credentials volume (/credentials):
# gateway.url and gateway-management.url (the management API as scrape-status, for GET /status's
# in_flight and capacity, as `make run` gives its gateway) for the gateway (owned by its uid 10001, 0400),
# worker.url for the workers (root, 0400: the workers run as root and their scripts as uids of their own,
# which cannot read it), and the monitoring
# and admin passwords (root, 0400; `docker compose exec rabbitmq cat` does not reach them: read them with
# `docker compose run --rm rabbitmq-users cat /credentials/admin.password`). guest is refused from other
# hosts (RabbitMQ's default loopback_users).
set -eu

NODE="${RABBITMQ_NODE:-rabbit@rabbitmq}"
TASK_QUEUE="${RABBITMQ_TASK_QUEUE:-scraping_tasks}"
DIR="${CREDENTIALS_DIR:-/credentials}"
umask 077

q=$(printf '%s' "$TASK_QUEUE" | sed 's/[.[\*^$()+?{}|\\]/\\&/g')
CONFIGURE="^(${q}(\\..*)?|amq\\.gen-.*)\$"
WRITE="^(${q}(\\..*)?|amq\\.gen-.*|amq\\.default)\$"
READ="^(${q}(\\..*)?|amq\\.gen-.*|amq\\.rabbitmq\\.reply-to.*)\$"

password() {
  f="$DIR/$1.password"
  if [ ! -s "$f" ]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$f"
  fi
  cat "$f"
}

user() { # name password tags configure write read
  if rabbitmqctl --node "$NODE" -q list_users | awk '{print $1}' | grep -qx "$1"; then
    rabbitmqctl --node "$NODE" -q change_password "$1" "$2"
  else
    rabbitmqctl --node "$NODE" -q add_user "$1" "$2"
  fi
  rabbitmqctl --node "$NODE" -q set_user_tags "$1" $3
  rabbitmqctl --node "$NODE" -q set_permissions -p / "$1" "$4" "$5" "$6"
}

mkdir -p "$DIR"
user scrape-gateway "$(password gateway)" "" "$CONFIGURE" "$WRITE" "$READ"
user scrape-worker "$(password worker)" "" "$CONFIGURE" "$WRITE" "$READ"
user scrape-monitoring "$(password monitoring)" "monitoring policymaker" '^$' '^$' '^$'
user scrape-status "$(password status)" "monitoring" '^$' '^$' '^$'
user scrape-admin "$(password admin)" "administrator" '.*' '.*' '.*'

printf 'amqp://scrape-gateway:%s@rabbitmq:5672/' "$(password gateway)" > "$DIR/gateway.url"
printf 'amqp://scrape-worker:%s@rabbitmq:5672/' "$(password worker)" > "$DIR/worker.url"
printf 'http://scrape-status:%s@rabbitmq:15672' "$(password status)" > "$DIR/gateway-management.url"
chown 10001:10001 "$DIR/gateway.url" "$DIR/gateway-management.url"
chmod 0400 "$DIR"/*.url "$DIR"/*.password
chmod 0711 "$DIR"
echo "broker users ready: scrape-gateway, scrape-worker, scrape-monitoring, scrape-status, scrape-admin"
