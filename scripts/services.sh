# Throwaway PostgreSQL and Redis on free ports, for tests. Source it, then call start_services;
# it exports DATABASE_URL and REDIS_URL, and stop_services removes everything.
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}

start_services() {
    SERVICES_DIR=$(mktemp -d /tmp/console-services.XXXXXX)
    chmod 755 "$SERVICES_DIR"
    local pg_port redis_port
    pg_port=$(free_port)
    redis_port=$(free_port)
    # initdb refuses root; the binaries may be on the machine without the package's user.
    id postgres >/dev/null 2>&1 || useradd --system --user-group --no-create-home postgres
    install -d -o postgres -g postgres "$SERVICES_DIR/pg" "$SERVICES_DIR/sock"
    log "starting PostgreSQL on 127.0.0.1:$pg_port"
    su postgres -s /bin/sh -c "$PG_BIN/initdb -D $SERVICES_DIR/pg/data -A trust -U postgres -E UTF8 >$SERVICES_DIR/pg/initdb.log 2>&1"
    su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $SERVICES_DIR/pg/data -l $SERVICES_DIR/pg/log -w -o '-p $pg_port -k $SERVICES_DIR/sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300' start >/dev/null"
    log "starting Redis on 127.0.0.1:$redis_port"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
        --pidfile "$SERVICES_DIR/redis.pid" --logfile "$SERVICES_DIR/redis.log"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/console"
    export REDIS_URL="redis://127.0.0.1:$redis_port/0"
    export SERVICES_DIR
}

stop_services() {
    [ -n "${SERVICES_DIR:-}" ] && [ -d "$SERVICES_DIR" ] || return 0
    su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $SERVICES_DIR/pg/data -m immediate stop >/dev/null 2>&1" || true
    [ -f "$SERVICES_DIR/redis.pid" ] && kill "$(cat "$SERVICES_DIR/redis.pid")" 2>/dev/null || true
    rm -rf "$SERVICES_DIR"
}
