#!/usr/bin/env bash
# Make sure a RabbitMQ answers on 127.0.0.1:5672 (guest/guest) for the tests that use it as
# Celery's broker: start the system's rabbitmq-server if it is installed, else install Debian's
# package first (when apt-get is usable, as root). Nothing here fails `make test`: without
# RabbitMQ those tests skip and say why (and fail under CI=true where it could be installed).
set -uo pipefail
answers() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
answers && exit 0
PATH="$PATH:/usr/sbin:/sbin"
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  bash "$(dirname "$0")/ensure-debian-packages.sh" rabbitmq-server
fi
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "no rabbitmq-server and it could not be installed: the RabbitMQ tests skip" >&2
  exit 0
fi
echo "no RabbitMQ on 127.0.0.1:5672: starting rabbitmq-server" >&2
rabbitmq-server -detached >/dev/null 2>&1 || true
for _ in $(seq 120); do answers && exit 0; sleep 0.5; done
echo "RabbitMQ did not come up on 127.0.0.1:5672 within 60 s: the RabbitMQ tests skip" >&2
exit 0
