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

# PostgreSQL: the same store code runs against it (TERRY_TEST_POSTGRES_URL).
if [ -z "${TERRY_TEST_POSTGRES_URL:-}" ] && [ "$(id -u)" = 0 ]; then
  pgver="$(ls /usr/lib/postgresql | sort -V | tail -1)"
  pgdata=/var/lib/terry-test-pg
  pgbin="/usr/lib/postgresql/$pgver/bin"
  if [ ! -s "$pgdata/PG_VERSION" ]; then
    rm -rf "$pgdata"; install -d -o postgres -g postgres -m 700 "$pgdata"
    su postgres -c "$pgbin/initdb -D $pgdata -A trust -U postgres >/dev/null"
  fi
  install -d -o postgres -g postgres /var/run/postgresql
  if ! su postgres -c "$pgbin/pg_ctl -D $pgdata status" >/dev/null 2>&1; then
    su postgres -c "$pgbin/pg_ctl -D $pgdata -l $pgdata/log -w -o '-p 55432 -k /var/run/postgresql -c listen_addresses=127.0.0.1' start" >/dev/null
  fi
  export TERRY_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:55432/postgres"
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
exec .venv/bin/python -m pytest -p no:cacheprovider --durations=30 "${parallel[@]}" "$@"
