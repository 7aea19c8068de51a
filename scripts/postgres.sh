#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the store tests and print the URL they read
# (CHATFORGE_TEST_PG_URL). Installs Debian's postgresql first when it is missing and we may (root + apt).
# Prints nothing, and exits 0, when no server can be had: the PostgreSQL tests are then skipped.
set -uo pipefail
if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q postgresql >/dev/null 2>&1 || \
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q postgresql >/dev/null 2>&1; } || exit 0
  else
    exit 0
  fi
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
port=${CHATFORGE_TEST_PG_PORT:-$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")}
dir=$(mktemp -d /tmp/chatforge-pg.XXXXXX)
run() { if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir"; runuser -u postgres -- "$@"; else "$@"; fi; }
run "$bin/initdb" -D "$dir/data" -A trust -U cf >/dev/null 2>&1 || exit 0
run "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null 2>&1 || exit 0
echo "postgresql+psycopg://cf@127.0.0.1:$port/postgres"
