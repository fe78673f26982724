#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests and the load benchmark, from Debian's `postgresql`
# package; no container engine needed.
#
#   scripts/postgres.sh install          installs the package when initdb/pg_ctl are missing
#   scripts/postgres.sh start [--watch PID]
#       creates a cluster in a new temporary folder, owned by an unprivileged user (PostgreSQL
#       refuses to run as root: the package's `postgres` user, else `nobody`), starts it on a
#       free localhost port with its unix socket in that folder, and prints its URL as the last
#       line of stdout: postgres://parley:PASSWORD@127.0.0.1:PORT/postgres. It also accepts TLS
#       (a self-signed certificate). With --watch, the server is stopped and its folder removed
#       once process PID has exited.
#   scripts/postgres.sh stop FOLDER      stops the server of FOLDER (printed on stderr) and
#                                        removes the folder
set -euo pipefail

say() { echo "postgres.sh: $*" >&2; }

# The folder of initdb and pg_ctl: PATH first, then the newest /usr/lib/postgresql/*/bin.
bin_dir() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return
  fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && echo "$dir"
}

install() {
  if bin_dir >/dev/null; then
    return
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "initdb/pg_ctl not found; install PostgreSQL (Debian: apt-get install postgresql)"
    return 1
  fi
  say "installing Debian's postgresql package"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends postgresql >&2; }
  bin_dir >/dev/null
}

# Runs a command as the cluster's owner: the unprivileged user when we are root.
as_owner() {
  if [ -n "$owner" ]; then runuser -u "$owner" -- "$@"; else "$@"; fi
}

start() {
  local watch=""
  if [ "${1:-}" = "--watch" ]; then watch="$2"; fi
  install
  local bin
  bin=$(bin_dir)
  owner=""
  if [ "$(id -u)" -eq 0 ]; then
    owner=postgres
    getent passwd postgres >/dev/null || owner=nobody
  fi
  local dir password
  dir=$(mktemp -d "${TMPDIR:-/tmp}/parley-pg.XXXXXX")
  chmod 700 "$dir"
  [ -z "$owner" ] || chown "$owner" "$dir"
  password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '%s\n' "$password" >"$dir/pwfile"
  [ -z "$owner" ] || chown "$owner" "$dir/pwfile"
  as_owner "$bin/initdb" -D "$dir/data" -U parley --pwfile="$dir/pwfile" -E UTF8 \
    --no-locale --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; rm -rf "$dir"; say "initdb failed"; return 1; }
  rm -f "$dir/pwfile"
  # A self-signed certificate, so clients can test sslmode=require (openssl comes with the
  # package, through ssl-cert).
  local tls=""
  if openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -keyout "$dir/data/server.key" -out "$dir/data/server.crt" >/dev/null 2>&1; then
    chmod 600 "$dir/data/server.key"
    [ -z "$owner" ] || chown "$owner" "$dir/data/server.key" "$dir/data/server.crt"
    tls="-c ssl=on"
  fi
  local port tries=0
  while :; do
    port=$((20000 + RANDOM % 40000))
    # A port something answers on is taken.
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
      as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
            -c shared_buffers=32MB $tls" start >/dev/null 2>&1; then
      break
    fi
    tries=$((tries + 1))
    if [ "$tries" -ge 5 ]; then
      cat "$dir/server.log" >&2 2>/dev/null || true
      rm -rf "$dir"
      say "the server did not start"
      return 1
    fi
  done
  if [ -n "$watch" ]; then
    # Stops the server once the watched process is gone, even when it was killed.
    setsid nohup bash "$0" __watch "$watch" "$dir" >/dev/null 2>&1 </dev/null &
  fi
  say "PostgreSQL in $dir, port $port"
  echo "postgres://parley:$password@127.0.0.1:$port/postgres"
}

stop() {
  local dir="$1"
  [ -d "$dir/data" ] || return 0
  local bin
  bin=$(bin_dir)
  owner=""
  if [ "$(id -u)" -eq 0 ]; then owner=$(stat -c %U "$dir"); fi
  as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  stop) stop "$2" ;;
  __watch)
    while kill -0 "$2" 2>/dev/null; do sleep 1; done
    stop "$3"
    ;;
  *) say "usage: $0 install | start [--watch PID] | stop FOLDER"; exit 2 ;;
esac
