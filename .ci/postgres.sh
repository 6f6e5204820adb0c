#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the RelStorage tests
# (appendonly/tests/test_relstorage.py).
#
#   eval "$(.ci/postgres.sh start)"   start one (installing PostgreSQL from
#                                     the distribution's packages if need
#                                     be) and export where it is
#   .ci/postgres.sh env               print those exports again
#   .ci/postgres.sh stop              stop it and delete its directory
#
# The cluster lives in a new temporary directory, listens on 127.0.0.1 on
# a free port (and on a Unix socket in that directory, which only its owner
# may use, trusted), and asks a password over TCP.  It holds two databases owned
# by the user appendonly: one for history-free RelStorage, one for
# history-preserving (a database holds one schema or the other: opened
# with the other keep-history, RelStorage fails creating its tables).  The
# tests empty them (zap_all) before use.
#
# `start` writes the exports to a state file as well ($APPENDONLY_PG_STATE,
# default ${TMPDIR:-/tmp}/appendonly-pg.env) and prints its path on stderr;
# run again while that cluster is up, it prints the same exports.  Logs go
# to stderr, the exports alone to stdout.  PostgreSQL refuses to run as
# root: run as root (CI), the cluster belongs to the `postgres` system user
# that the Debian package creates.
#
# Durability is switched off (fsync, synchronous_commit, full_page_writes):
# the data is thrown away, and the tests commit a lot.
set -euo pipefail

STATE=${APPENDONLY_PG_STATE:-${TMPDIR:-/tmp}/appendonly-pg.env}
PG_USER=appendonly
PG_DB_HF=appendonly_hf
PG_DB_HP=appendonly_hp
START_TIMEOUT=30        # seconds pg_ctl waits for the server

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# Set while `start` is half done: the cluster to stop and delete if it
# fails (no server left running without a state file to stop it by).
CLEANUP_DIR=
CLEANUP_BINDIR=
cleanup_failed_start() {
    [ -n "$CLEANUP_DIR" ] || return 0
    log "start failed: removing $CLEANUP_DIR"
    if [ -f "$CLEANUP_DIR/data/postmaster.pid" ]; then
        as_owner "$CLEANUP_BINDIR/pg_ctl" -D "$CLEANUP_DIR/data" \
            -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$CLEANUP_DIR"
}
trap cleanup_failed_start EXIT

# Run a PostgreSQL program as the user that owns the cluster.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# The directory of initdb, pg_ctl, psql: on PATH, or the newest Debian
# version under /usr/lib/postgresql (where Debian puts them, off PATH).
find_bindir() {
    local initdb
    initdb=$(command -v initdb 2>/dev/null) || initdb=$(
        ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V |
        tail -n 1)
    [ -n "$initdb" ] || return 1
    dirname "$(readlink -f "$initdb")"
}

install_postgresql() {
    [ "$(id -u)" = 0 ] ||
        die "PostgreSQL (initdb) is not installed and this is not root:" \
            "install the distribution's postgresql package"
    command -v apt-get >/dev/null ||
        die "PostgreSQL (initdb) is not installed and there is no apt-get"
    log "installing PostgreSQL from the distribution's packages"
    export DEBIAN_FRONTEND=noninteractive
    local keep_conf=(-o Dpkg::Options::=--force-confdef
                     -o Dpkg::Options::=--force-confold)
    apt-get update -qq >&2
    # No cluster "main" on port 5432 started behind our back: only ours.
    apt-get install -y -qq --no-install-recommends "${keep_conf[@]}" \
        postgresql-common >&2
    sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
        /etc/postgresql-common/createcluster.conf
    apt-get install -y -qq --no-install-recommends "${keep_conf[@]}" \
        postgresql >&2
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
port_taken() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
    local port
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 40000))
        port_taken "$port" || { echo "$port"; return; }
    done
    die "no free port found on 127.0.0.1"
}

# Whether the cluster described by the state file is up.
state_running() {
    [ -f "$STATE" ] || return 1
    # shellcheck disable=SC1090
    source "$STATE"
    [ -n "${APPENDONLY_PG_DIR:-}" ] && [ -d "$APPENDONLY_PG_DIR/data" ] ||
        return 1
    as_owner "$APPENDONLY_PG_BINDIR/pg_ctl" status \
        -D "$APPENDONLY_PG_DIR/data" >/dev/null 2>&1 &&
        "$APPENDONLY_PG_BINDIR/pg_isready" -q -h "$APPENDONLY_PG_HOST" \
            -p "$APPENDONLY_PG_PORT" -t 5
}

cmd_start() {
    if state_running; then
        log "already running in $APPENDONLY_PG_DIR (exports: $STATE)"
        cat "$STATE"
        return
    fi
    if [ -f "$STATE" ]; then
        log "removing the stale cluster of $STATE"
        cmd_stop
    fi

    local bindir
    if ! bindir=$(find_bindir); then
        install_postgresql
        bindir=$(find_bindir) || die "initdb not found after installing"
    fi
    log "using $("$bindir/postgres" --version)"

    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/appendonly-pg.XXXXXX")
    CLEANUP_DIR=$dir CLEANUP_BINDIR=$bindir
    chmod 755 "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir"
        as_owner test -w "$dir" ||
            die "$dir: not writable by the postgres user (set TMPDIR)"
    fi
    # URL-safe (hex): RelStorage's postgres:// resolver does not unquote.
    local password
    password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

    as_owner "$bindir/initdb" -D "$dir/data" -U postgres --no-locale \
        -E UTF8 --auth-local=trust --auth-host=scram-sha-256 --no-sync \
        >"$dir/initdb.log" 2>&1 ||
        die "initdb failed:"$'\n'"$(cat "$dir/initdb.log")"

    as_owner tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF
# appendonly: a throwaway test cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
unix_socket_permissions = 0700
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    # A port found free can be taken before the server binds it: retry
    # (the last port line of the file wins).
    local port started=
    for attempt in 1 2 3; do
        port=$(free_port)
        echo "port = $port" |
            as_owner tee -a "$dir/data/postgresql.conf" >/dev/null
        if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
                -w -t "$START_TIMEOUT" start >&2; then
            started=1
            break
        fi
        grep -q 'in use' "$dir/server.log" || break
        log "port $port taken (attempt $attempt), trying another"
    done
    [ -n "$started" ] ||
        die "PostgreSQL did not start:"$'\n'"$(tail -n 30 "$dir/server.log")"

    as_owner "$bindir/psql" -h "$dir" -p "$port" -U postgres -d postgres \
        -q -v ON_ERROR_STOP=1 >&2 <<EOF ||
CREATE ROLE $PG_USER LOGIN PASSWORD '$password';
CREATE DATABASE $PG_DB_HF OWNER $PG_USER;
CREATE DATABASE $PG_DB_HP OWNER $PG_USER;
EOF
        die "cannot create the user and the databases"
    # What the tests do: log in over TCP with the password.
    local db
    for db in "$PG_DB_HF" "$PG_DB_HP"; do
        PGPASSWORD=$password PGCONNECT_TIMEOUT=10 "$bindir/psql" \
            -h 127.0.0.1 -p "$port" -U "$PG_USER" -d "$db" -qAt \
            -c 'SELECT 1' >/dev/null ||
            die "cannot log in to $db on 127.0.0.1:$port"
    done

    local stop
    if [ "$(id -u)" = 0 ]; then
        stop="runuser -u postgres -- $bindir/pg_ctl -D $dir/data -m fast stop"
    else
        stop="$bindir/pg_ctl -D $dir/data -m fast stop"
    fi
    (
        umask 077
        {
            printf 'export APPENDONLY_PG_HOST=127.0.0.1\n'
            printf 'export APPENDONLY_PG_PORT=%s\n' "$port"
            printf 'export APPENDONLY_PG_USER=%s\n' "$PG_USER"
            printf 'export APPENDONLY_PG_PASSWORD=%s\n' "$password"
            printf 'export APPENDONLY_PG_DB_HF=%s\n' "$PG_DB_HF"
            printf 'export APPENDONLY_PG_DB_HP=%s\n' "$PG_DB_HP"
            printf 'export APPENDONLY_PG_DSN=%q\n' \
                "host=127.0.0.1 port=$port user=$PG_USER password=$password"
            printf 'export APPENDONLY_PG_DIR=%q\n' "$dir"
            printf 'export APPENDONLY_PG_BINDIR=%q\n' "$bindir"
            printf 'export APPENDONLY_PG_STOP=%q\n' "$stop"
        } >"$STATE"
    )
    CLEANUP_DIR=
    log "PostgreSQL on 127.0.0.1:$port, data in $dir; exports in $STATE"
    cat "$STATE"
}

cmd_env() {
    state_running || die "no cluster running (no $STATE, or it is down)"
    cat "$STATE"
}

cmd_stop() {
    if [ ! -f "$STATE" ]; then
        log "nothing to stop (no $STATE)"
        return
    fi
    # shellcheck disable=SC1090
    source "$STATE"
    if [ -d "${APPENDONLY_PG_DIR:-}/data" ]; then
        as_owner "$APPENDONLY_PG_BINDIR/pg_ctl" status \
            -D "$APPENDONLY_PG_DIR/data" >/dev/null 2>&1 &&
            as_owner "$APPENDONLY_PG_BINDIR/pg_ctl" \
                -D "$APPENDONLY_PG_DIR/data" -m fast -w stop >&2
    fi
    case "${APPENDONLY_PG_DIR:-}" in
        */appendonly-pg.*) rm -rf "$APPENDONLY_PG_DIR" ;;
    esac
    rm -f "$STATE"
    log "stopped"
}

case "${1:-}" in
    start) cmd_start ;;
    env) cmd_env ;;
    stop) cmd_stop ;;
    *) die "usage: $0 start|env|stop" ;;
esac
