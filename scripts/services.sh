# shellcheck shell=bash
# PostgreSQL and Redis started by hand (no systemd), on 127.0.0.1. Source it after common.sh.
# - start_services / stop_services: a throwaway pair on free ports in a temporary directory, for
#   tests and benchmarks (no durability, trust authentication), removed when stopped.
# - start_embedded / stop_embedded: `make run`'s pair, kept under $DATA_DIR/postgres and
#   $DATA_DIR/redis across restarts, with passwords, and $DATA_DIR/services.env for manage.py.
# Both export DATABASE_URL and REDIS_URL.

pg_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# as_pg COMMAND...: initdb refuses root, so as root PostgreSQL runs as the postgres system user
# (created when the binaries came without it); otherwise as the current user. From / because
# the caller's directory may be closed to that user.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && setpriv --reuid=postgres --regid=postgres --init-groups -- "$@")
    else
        (cd / && "$@")
    fi
}

# pg_dirs DIR...: directories PostgreSQL may write, private to the user it runs as.
pg_dirs() {
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --user-group --no-create-home postgres
        install -d -m 700 -o postgres -g postgres "$@"
    else
        install -d -m 700 "$@"
    fi
}

# pg_start DIR PORT [SERVER OPTION...]: start the cluster in DIR/data on 127.0.0.1:PORT with its
# socket in DIR and its log in DIR/postgresql.log; returns once it accepts connections.
pg_start() {
    local dir=$1 port=$2
    shift 2
    local options="-p $port -k '$dir' -c listen_addresses=127.0.0.1 $*"
    log "starting PostgreSQL on 127.0.0.1:$port"
    as_pg "$(pg_bin)/pg_ctl" -D "$dir/data" -l "$dir/postgresql.log" -w -t 60 -o "$options" \
        start >/dev/null 9>&- || {
        tail -n 20 "$dir/postgresql.log" >&2
        return 1
    }
}

pg_stop() {
    local dir=$1 mode=${2:-fast}
    [ -f "$dir/data/postmaster.pid" ] || return 0
    as_pg "$(pg_bin)/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null 2>&1 || true
}

# redis_start DIR PORT [DIRECTIVE...]: Redis with DIR as its working directory (pid file, log,
# and data when persistence is on) and the directives given, one config line each; returns
# once it answers PING (authenticated by REDISCLI_AUTH when a password is set). The config file
# keeps a password out of the process list.
redis_start() {
    local dir=$1 port=$2
    shift 2
    install -d -m 700 "$dir"
    {
        printf '%s\n' "bind 127.0.0.1" "port $port" "daemonize yes" "dir \"$dir\"" \
            "pidfile \"$dir/redis.pid\"" "logfile \"$dir/redis.log\""
        printf '%s\n' "$@"
    } >"$dir/redis.conf"
    chmod 600 "$dir/redis.conf"
    log "starting Redis on 127.0.0.1:$port"
    redis-server "$dir/redis.conf" 9>&-
    local tries=0
    until [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; do
        tries=$((tries + 1))
        if [ $tries -gt 300 ]; then
            tail -n 20 "$dir/redis.log" >&2
            return 1
        fi
        sleep 0.1
    done
}

# redis_stop DIR: SIGTERM makes Redis flush its append-only file and exit; wait for it (10 s).
redis_stop() {
    local pid
    pid=$(cat "$1/redis.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || return 0
    wait_gone "$pid" 100 || kill -KILL "$pid" 2>/dev/null || true
}

# wait_gone PID TENTHS: true once PID has exited, false after TENTHS tenths of a second.
wait_gone() {
    local tries=0
    while kill -0 "$1" 2>/dev/null; do
        tries=$((tries + 1))
        [ $tries -gt "$2" ] && return 1
        sleep 0.1
    done
}

# Throwaway services (tests, benchmarks) -----------------------------------------------------

start_services() {
    SERVICES_DIR=$(mktemp -d /tmp/console-services.XXXXXX)
    chmod 755 "$SERVICES_DIR"
    local pg_port redis_port
    pg_port=$(free_port)
    redis_port=$(free_port)
    pg_dirs "$SERVICES_DIR/postgres"
    as_pg "$(pg_bin)/initdb" -D "$SERVICES_DIR/postgres/data" -A trust -U postgres -E UTF8 \
        >"$SERVICES_DIR/initdb.log" 2>&1
    pg_start "$SERVICES_DIR/postgres" "$pg_port" -c fsync=off -c synchronous_commit=off \
        -c full_page_writes=off -c max_connections=300
    redis_start "$SERVICES_DIR/redis" "$redis_port" "save ''" "appendonly no"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/console"
    export REDIS_URL="redis://127.0.0.1:$redis_port/0"
    export SERVICES_DIR
}

stop_services() {
    [ -n "${SERVICES_DIR:-}" ] && [ -d "$SERVICES_DIR" ] || return 0
    pg_stop "$SERVICES_DIR/postgres" immediate
    redis_stop "$SERVICES_DIR/redis"
    rm -rf "$SERVICES_DIR"
}

# make run's services ---------------------------------------------------------------------------
# PostgreSQL: cluster in $DATA_DIR/postgres/data, superuser reachable only through the socket in
# $DATA_DIR/postgres (peer authentication), the console's role "console" by password over TCP.
# Redis: append-only file in $DATA_DIR/redis, password required. Ports: POSTGRES_PORT /
# REDIS_PORT if set, else the last run's if still free, else free ones.

EMBEDDED_PG=""
EMBEDDED_REDIS=""

# previous NAME: the value NAME had in the last run's services.env (empty if none).
previous() {
    sed -n "s|^$1=||p" "$DATA_DIR/services.env" 2>/dev/null | tail -n 1
}

# url_port URL / url_password URL: the parts of a scheme://user:password@host:port/db URL.
url_port() { sed -n 's|.*@127\.0\.0\.1:\([0-9]*\)/.*|\1|p' <<<"$1"; }
url_password() { sed -n 's|^[a-z]*://[^:]*:\([^@]*\)@.*|\1|p' <<<"$1"; }

# pick_port CONFIGURED PREVIOUS: the configured port (which must be free), else the previous
# one if free, else a free one.
pick_port() {
    if [ -n "$1" ]; then
        port_free "$1" || die "port $1 is taken (set another one, or unset it for a free port)"
        echo "$1"
    elif [ -n "$2" ] && port_free "$2"; then
        echo "$2"
    else
        free_port
    fi
}

new_password() {
    "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))'
}

# stop_leftovers: services an earlier run left running (it was killed with SIGKILL); the caller
# holds DATA_DIR's lock, so no live run owns them.
stop_leftovers() {
    if [ -f "$DATA_DIR/postgres/data/postmaster.pid" ] &&
        as_pg "$(pg_bin)/pg_ctl" -D "$DATA_DIR/postgres/data" status >/dev/null 2>&1; then
        log "stopping the PostgreSQL an earlier run left running"
        pg_stop "$DATA_DIR/postgres"
    fi
    local pid
    pid=$(cat "$DATA_DIR/redis/redis.pid" 2>/dev/null) || return 0
    if grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
        log "stopping the Redis an earlier run left running"
        redis_stop "$DATA_DIR/redis"
    fi
}

embedded_postgres() {
    local dir=$DATA_DIR/postgres port password superuser
    port=$(pick_port "${POSTGRES_PORT:-}" "$(url_port "$(previous DATABASE_URL)")")
    password=$(url_password "$(previous DATABASE_URL)")
    password=${password:-$(new_password)}
    superuser=$(id -un)
    [ "$(id -u)" != 0 ] || superuser=postgres
    pg_dirs "$dir"
    as_pg test -w "$dir" || die "PostgreSQL (user $superuser) cannot write $dir: \
every directory above DATA_DIR must be open to it (chmod o+x), or choose another DATA_DIR"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        log "creating the PostgreSQL cluster in $dir/data"
        as_pg "$(pg_bin)/initdb" -D "$dir/data" -U "$superuser" -E UTF8 --auth-local=peer \
            --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 || {
            tail -n 20 "$dir/initdb.log" >&2
            return 1
        }
    fi
    pg_start "$dir" "$port"
    EMBEDDED_PG=$dir
    # Role and database are made (or the password reset) through the superuser's socket; the
    # statements go on stdin so the password never appears in a process list.
    as_pg "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -d postgres >/dev/null <<SQL
SELECT 'CREATE ROLE console LOGIN CREATEDB'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'console') \gexec
ALTER ROLE console PASSWORD '$password';
SELECT 'CREATE DATABASE console OWNER console'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'console') \gexec
SQL
    export DATABASE_URL="postgres://console:$password@127.0.0.1:$port/console"
}

embedded_redis() {
    local port password
    port=$(pick_port "${REDIS_PORT:-}" "$(url_port "$(previous REDIS_URL)")")
    password=$(url_password "$(previous REDIS_URL)")
    password=${password:-$(new_password)}
    REDISCLI_AUTH=$password redis_start "$DATA_DIR/redis" "$port" "requirepass $password" "appendonly yes" \
        "appendfsync everysec" "save ''"
    EMBEDDED_REDIS=$DATA_DIR/redis
    export REDIS_URL="redis://default:$password@127.0.0.1:$port/0"
}

# start_embedded: the services DATABASE_URL / REDIS_URL do not already name, then
# $DATA_DIR/services.env with the URLs of those it started (settings.py reads it when the
# variables are unset, so manage.py in another terminal finds them).
start_embedded() {
    stop_leftovers
    local lines=()
    if [ -z "${DATABASE_URL:-}" ]; then
        embedded_postgres
        lines+=("DATABASE_URL=$DATABASE_URL")
    fi
    if [ -z "${REDIS_URL:-}" ]; then
        embedded_redis
        lines+=("REDIS_URL=$REDIS_URL")
    fi
    local env_file=$DATA_DIR/services.env
    (
        umask 077 # it holds the passwords
        {
            printf '# Written by scripts/run.sh: the services of the running `make run`.\n'
            [ ${#lines[@]} -eq 0 ] || printf '%s\n' "${lines[@]}"
        } >"$env_file.new"
    )
    mv "$env_file.new" "$env_file"
}

# stop_embedded: both at once, each waited for.
stop_embedded() {
    local stopping=()
    if [ -n "$EMBEDDED_PG" ]; then
        pg_stop "$EMBEDDED_PG" &
        stopping+=($!)
    fi
    if [ -n "$EMBEDDED_REDIS" ]; then
        redis_stop "$EMBEDDED_REDIS" &
        stopping+=($!)
    fi
    [ ${#stopping[@]} -eq 0 ] || wait "${stopping[@]}"
    EMBEDDED_PG=""
    EMBEDDED_REDIS=""
}
