#!/usr/bin/env bash
# CI: the PostgreSQL server binaries the database tests start (tests/postgres_server.py runs
# initdb and pg_ctl from /usr/lib/postgresql/*/bin in a temporary folder, as an unprivileged
# user). Idempotent: does nothing when they are there. The Debian package also starts a
# cluster of its own where a service manager runs; the tests do not use it.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
   && ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
