#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the store's tests and print, on stdout, the one line
#   export PLAN_TRACKER_TEST_PG=postgresql://plan:plan@127.0.0.1:PORT/plan_tracker_test
# for the caller to eval:   eval "$(bash scripts/start-postgres.sh)"
#
# Idempotent: a second run finds the running server and prints the same line. Installs
# Debian's postgresql package when no server binaries are present (root only). Everything
# else goes to stderr. When no server can be started it says why on stderr, prints no export
# line and exits 0, so the PostgreSQL tests skip with a visible reason instead of failing the
# run. Stop it with:  bash scripts/start-postgres.sh --stop
#
# Settings (environment): PLAN_TRACKER_PG_ROOT (default /tmp/plan-tracker-pg),
# PLAN_TRACKER_PG_PORT (first port to try, default 54329), PYTHON (the tests' interpreter,
# for the psycopg check: default the repo's .venv/bin/python, else python3).
set -u

ROOT=${PLAN_TRACKER_PG_ROOT:-/tmp/plan-tracker-pg}
DATA=$ROOT/data
LOG=$ROOT/server.log
FIRST_PORT=${PLAN_TRACKER_PG_PORT:-54329}
HERE=$(cd "$(dirname "$0")" && pwd)
# The interpreter that will run the tests: the repo's virtualenv (scripts/test.sh) if any.
if [ -z "${PYTHON:-}" ] && [ -x "$HERE/../.venv/bin/python" ]; then
    PYTHON=$HERE/../.venv/bin/python
fi
PYTHON=${PYTHON:-python3}
DB=plan_tracker_test
DB_USER=plan
DB_PASSWORD=plan

say() { echo "start-postgres: $*" >&2; }
give_up() {
    say "$*"
    say "PostgreSQL 测试将被跳过 / the PostgreSQL tests will be skipped"
    exit 0
}

# Server binaries: Debian keeps them in /usr/lib/postgresql/<version>/bin, off the PATH.
find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
    done
    if command -v pg_config >/dev/null 2>&1; then
        dir=$(pg_config --bindir 2>/dev/null)
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
    fi
    dir=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
    return 1
}

IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1

# Root cannot run the server; run its commands as the postgres user (made by the package).
as_owner() {
    if [ "$IS_ROOT" = 1 ]; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

BINDIR=$(find_bindir)
if [ "${1:-}" = "--stop" ]; then
    if [ -n "$BINDIR" ] && [ -f "$DATA/PG_VERSION" ]; then
        as_owner "$BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
    fi
    exit 0
fi

if [ -z "$BINDIR" ]; then
    if [ "$IS_ROOT" != 1 ] || ! command -v apt-get >/dev/null 2>&1; then
        give_up "没有 PostgreSQL 服务器程序，且无法安装（需要 root 与 apt-get）/ no PostgreSQL server binaries (initdb, pg_ctl) and cannot install them (needs root and apt-get)"
    fi
    say "installing Debian's postgresql package (apt-get) ..."
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get update -qq </dev/null >&2; then
        give_up "apt-get update failed"
    fi
    if ! apt-get install -y -qq --no-install-recommends postgresql </dev/null >&2; then
        give_up "apt-get install postgresql failed"
    fi
    BINDIR=$(find_bindir) || give_up "postgresql installed but initdb/pg_ctl not found"
fi
if [ "$IS_ROOT" = 1 ] && ! id postgres >/dev/null 2>&1; then
    give_up "no 'postgres' user to run the server as (root may not run it)"
fi

# The client library the tests use.
if ! "$PYTHON" -c "import psycopg" >/dev/null 2>&1; then
    say "installing psycopg[binary] ..."
    "$PYTHON" -m pip install -q "psycopg[binary]>=3.1" </dev/null >&2 \
        || say "pip install psycopg[binary] into $PYTHON failed: install it (pip install -e '.[test]') or the PostgreSQL tests will fail"
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
server_up() { "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$1" -t 2 >/dev/null 2>&1; }

mkdir -p "$ROOT" || give_up "cannot create $ROOT"
[ "$IS_ROOT" = 1 ] && chown postgres: "$ROOT"
chmod 700 "$ROOT"

# Our server is running when the pid in its pid file is a live postgres process (a pid
# reused by something else after a kill does not count) and it answers on its port.
# /proc, not ps: minimal images have no procps.
live_postgres_in() {  # FILE whose first line is a pid
    local pid
    pid=$(head -n 1 "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ] || return 1
    # A killed postmaster nobody has reaped yet is a zombie: dead for our purposes.
    ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}
our_server_pid() { live_postgres_in "$DATA/postmaster.pid"; }
running=0
if our_server_pid && [ -f "$ROOT/port" ] && server_up "$(cat "$ROOT/port")"; then
    PORT=$(cat "$ROOT/port")
    running=1
fi

if [ "$running" = 0 ]; then
    if our_server_pid; then  # ours but not answering: restart it
        as_owner "$BINDIR/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >&2 || true
    fi
    # A pid file or socket lock file left by a killed server would stop a new one starting
    # (postgres itself takes a zombie's pid for a live server).
    our_server_pid || rm -f "$DATA/postmaster.pid"
    for lock in "$ROOT"/.s.PGSQL.*.lock; do
        [ -e "$lock" ] && ! live_postgres_in "$lock" && rm -f "$lock" "${lock%.lock}"
    done
    if [ ! -f "$DATA/PG_VERSION" ]; then
        rm -rf "$DATA"
        # trust over the socket (only the owner can reach $ROOT), passwords over TCP, as a
        # real deployment would use; C.UTF-8 so results do not depend on the host's locale.
        as_owner "$BINDIR/initdb" -D "$DATA" -U postgres --auth-local=trust \
            --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$ROOT/initdb.log" 2>&1 \
            || give_up "initdb failed: $(tail -n 5 "$ROOT/initdb.log" 2>/dev/null)"
    fi
    PORT=""
    for candidate in $(seq "$FIRST_PORT" $((FIRST_PORT + 20))); do
        if ! port_in_use "$candidate"; then PORT=$candidate; break; fi
    done
    [ -n "$PORT" ] || give_up "no free port in $FIRST_PORT-$((FIRST_PORT + 20)) on 127.0.0.1"
    # Throwaway data: durability settings off for speed; listen on loopback only.
    options="-p $PORT -k $ROOT -c listen_addresses=127.0.0.1 -c fsync=off"
    options="$options -c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
    if ! as_owner "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -o "$options" -w -t 60 start >&2; then
        give_up "the server did not start: $(tail -n 5 "$LOG" 2>/dev/null)"
    fi
    echo "$PORT" >"$ROOT/port"
    [ "$IS_ROOT" = 1 ] && chown postgres: "$ROOT/port"
fi

psql_admin() {
    as_owner "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$ROOT" -p "$PORT" -U postgres \
        -d postgres "$@"
}
if ! psql_admin >&2 <<SQL
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', '$DB_USER', '$DB_PASSWORD')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER') \gexec
ALTER ROLE $DB_USER PASSWORD '$DB_PASSWORD';
SELECT format('CREATE DATABASE %I OWNER %I', '$DB', '$DB_USER')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB') \gexec
SQL
then
    give_up "could not create the test database and user (see $LOG)"
fi

URL="postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PORT/$DB"
say "PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}') is running on 127.0.0.1:$PORT (data $DATA, log $LOG)"
echo "export PLAN_TRACKER_TEST_PG=$URL"
