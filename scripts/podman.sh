# Podman's Docker-compatible API, for the docker runtime's tests. Source it (after common.sh),
# then call start_podman: it exports PODMAN_URL (unix:///…/podman.sock) and CONTAINERS_CONF,
# builds the local test image when missing, and stop_podman ends the service.
# Podman 4.3 on these machines works only with runc and explicit ulimits (ENVIRONMENT.md), and no
# registry is reachable, so the image is imported from a tarball of busybox-static.
PODMAN_IMAGE=${PODMAN_IMAGE:-localhost/console-busybox:latest}

build_podman_image() {
    # The label marks an image with every applet (an older hand-made one had only a few).
    local label
    label=$(podman image inspect --format '{{index .Labels "console.busybox"}}' "$PODMAN_IMAGE" 2>/dev/null || true)
    [ "$label" = all-applets ] && return 0
    ensure_apt /bin/busybox busybox-static
    log "building $PODMAN_IMAGE from /bin/busybox"
    local rootfs="$PODMAN_DIR/rootfs" applet
    mkdir -p "$rootfs"/{bin,tmp,etc,proc,sys,dev,root}
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
    done
    echo "root:x:0:0:root:/root:/bin/sh" > "$rootfs/etc/passwd"
    echo "root:x:0:" > "$rootfs/etc/group"
    chmod 1777 "$rootfs/tmp"
    tar -C "$rootfs" -cf "$PODMAN_DIR/rootfs.tar" .
    podman import --quiet --change 'CMD ["/bin/sh"]' --change 'LABEL console.busybox=all-applets' \
        "$PODMAN_DIR/rootfs.tar" "$PODMAN_IMAGE" >/dev/null
    rm -rf "$rootfs" "$PODMAN_DIR/rootfs.tar"
}

start_podman() {
    # What this runs besides coreutils: podman, the runtime and init the config and the
    # docker runtime ask for (runc, catatonit), and iptables, which Podman's network plugins
    # run to publish ports (only "Suggested" by podman, so absent on a minimal machine).
    ensure_apt podman podman runc runc /usr/libexec/podman/catatonit catatonit \
        /usr/sbin/iptables iptables || return 1
    PODMAN_DIR=$(mktemp -d /tmp/console-podman.XXXXXX)
    cat > "$PODMAN_DIR/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF="$PODMAN_DIR/containers.conf"
    build_podman_image
    local sock="$PODMAN_DIR/podman.sock" waited=0
    log "starting Podman's Docker API on $sock"
    podman system service --time=0 "unix://$sock" </dev/null >"$PODMAN_DIR/service.log" 2>&1 &
    echo $! > "$PODMAN_DIR/service.pid"
    until [ -S "$sock" ]; do
        if [ $waited -ge 200 ]; then
            log "Podman's API did not come up; see $PODMAN_DIR/service.log"
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    export PODMAN_URL="unix://$sock" PODMAN_DIR
}

stop_podman() {
    [ -n "${PODMAN_DIR:-}" ] && [ -d "$PODMAN_DIR" ] || return 0
    local pid
    pid=$(cat "$PODMAN_DIR/service.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$PODMAN_DIR"
}
