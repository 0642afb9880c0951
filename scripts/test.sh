#!/usr/bin/env bash
# The full test suite: install what is needed (Debian packages, PostgreSQL, Chromium for the
# console's browser tests, xfsprogs for the AWS lab test, a virtualenv with the test tools),
# start PostgreSQL, then ruff, the architecture's contracts (lint-imports, and no import
# cycles), and every pytest tier (unit, integration, lab), on TERRY_TEST_WORKERS workers (2;
# 0 runs in this one process; tests/conftest.py says how the work is grouped).
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TERRY_EXTRAS=test TERRY_APT_EXTRA="postgresql postgresql-client chromium xfsprogs" bash "$here/scripts/setup.sh"
export PATH="$here/.venv/bin:$PATH"
cd "$here"

# PostgreSQL: the same store code runs against it (TERRY_TEST_POSTGRES_URL). The run gets a
# server of its own, on a free port, thrown away when the run ends: a server kept between
# runs grew by a database per test, and after an unclean stop took minutes of recovery
# before it would start. fsync is off: nothing in it outlives the run.
if [ -z "${TERRY_TEST_POSTGRES_URL:-}" ] && [ "$(id -u)" = 0 ]; then
  pgbin="/usr/lib/postgresql/$(ls /usr/lib/postgresql | sort -V | tail -1)/bin"
  # What a killed run left behind (its test.sh, named in `owner`, is gone): stopped, removed.
  for old in $(find /var/tmp -maxdepth 1 -name 'terry-test-pg.*' -mmin +1 2>/dev/null); do
    owner="$(cat "$old/owner" 2>/dev/null || true)"
    if [ -z "$owner" ] || ! kill -0 "$owner" 2>/dev/null; then
      su postgres -c "$pgbin/pg_ctl -D $old/data -m immediate stop" >/dev/null 2>&1 || true
      rm -rf "$old"
    fi
  done
  pgroot="$(mktemp -d /var/tmp/terry-test-pg.XXXXXX)"
  echo $$ > "$pgroot/owner"
  pgdata="$pgroot/data"
  chown postgres:postgres "$pgroot"
  stop_postgres() {
    su postgres -c "$pgbin/pg_ctl -D $pgdata -m immediate stop" >/dev/null 2>&1 || true
    rm -rf "$pgroot"
  }
  trap stop_postgres EXIT
  trap 'exit 143' TERM INT
  su postgres -c "$pgbin/initdb -D $pgdata -A trust -U postgres --no-sync >/dev/null"
  pgport="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  if ! su postgres -c "$pgbin/pg_ctl -D $pgdata -l $pgdata/log -w -t 300 -o '-p $pgport -k $pgdata -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off' start" >/dev/null; then
    echo "test.sh: PostgreSQL did not start; its log ends:" >&2
    tail -n 20 "$pgdata/log" >&2
    exit 1
  fi
  export TERRY_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$pgport/postgres"
fi

lint=(terry tests); [ -d bench ] && lint+=(bench)
.venv/bin/ruff check "${lint[@]}"
.venv/bin/ruff format --check "${lint[@]}"
# The layers, seams and independence declared in pyproject.toml ([tool.importlinter]).
.venv/bin/lint-imports --no-cache
workers="${TERRY_TEST_WORKERS:-2}"
parallel=()
if [ "$workers" != 0 ]; then parallel=(-n "$workers" --dist loadscope --no-loadscope-reorder); fi
# --durations: the slowest tests, named in the log, so the next cut of CI time is measured.
.venv/bin/python -m pytest -p no:cacheprovider --durations=30 "${parallel[@]}" "$@"
