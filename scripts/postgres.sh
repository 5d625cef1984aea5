#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback for the control plane's tests.
#
#   scripts/postgres.sh start DIR   # initialise a cluster in DIR, start it, print its URL
#   scripts/postgres.sh stop DIR    # stop it and delete DIR
#
# Installs Debian's `postgresql` package when no server is on the machine (root only). As
# root, the server runs as the `postgres` user, since PostgreSQL refuses to run as root. It
# listens on 127.0.0.1 only, on a free port, with trust authentication and fsync off: it
# holds nothing but test data and lives as long as one test run.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
action=$1 dir=$2

bindir() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n $found && -x $found/pg_ctl ]] && echo "$found"
}

install_server() {
    if [[ $EUID -ne 0 ]]; then
        echo "postgres.sh: no PostgreSQL server found; install Debian's postgresql package" >&2
        exit 1
    fi
    echo "postgres.sh: installing Debian's postgresql package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
}

# Run a server program as the user that owns the cluster.
as_owner() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local bin port
    bin=$(bindir) || { install_server; bin=$(bindir); }
    mkdir -p "$dir"
    [[ $EUID -eq 0 ]] && chown postgres: "$dir"
    chmod 700 "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log"
    # A port can be taken between choosing and binding it: try a few.
    for _ in 1 2 3; do
        port=$(free_port)
        if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
                -o "-h 127.0.0.1 -p $port -k $dir -F -c synchronous_commit=off" start >/dev/null
        then
            echo "postgresql://postgres@127.0.0.1:$port/postgres"
            return
        fi
    done
    echo "postgres.sh: the server did not start; see $dir/server.log" >&2
    cat "$dir/server.log" >&2 || true
    exit 1
}

stop() {
    local bin
    if [[ -f $dir/data/postmaster.pid ]] && bin=$(bindir); then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    rm -rf "$dir"
}

case $action in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
