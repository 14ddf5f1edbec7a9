"""The process runtime never forwards a pod's port from a host port the host's NAT redirects.

Podman's port publishing (CNI portmap) adds `DNAT 127.0.0.1:<port> -> <container>` rules and
leaves them behind when a container's network teardown fails, which happens on these machines.
A pod given such a port was unreachable though slirp4netns listened there: the proxy's upstream
connect failed with EHOSTUNREACH after 3 s (ARP for the vanished container), and the tests'
wait_listening took the hanging connect for a server (test_proxy.py's websocket test, once in
CI). The rules here live in a network namespace of the test's own, never on the host."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Ports 40000-40009 only. 40001 is sent to 10.99.0.2 on a bridge-like veth where nobody answers
# ARP (a container gone), 40003 to a decoy listener on 39999 (one still there); the eight others
# are clean. The probed ports are odd because a probe of a redirected port leaves a conntrack
# entry: a later probe whose source and destination were that entry's reversed would be taken
# for its reply direction (no NAT: a redirected port seen as clean; or sent where the entry
# points: a clean one seen as redirected; 1 run in 10 with even ones). Linux gives connect()
# even ephemeral ports and bind(0) odd ones, so no probe's source is another probe's port.
NETWORK = """
set -e
ip link set lo up
ip link add gone0 type veth peer name gone1
ip addr add 10.99.0.1/24 dev gone0
ip link set gone0 up
ip link set gone1 up
sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.ip_local_port_range="40000 40009"
nat="iptables -t nat -A OUTPUT -d 127.0.0.1/32 -p tcp -j DNAT"
$nat --dport 40001 --to-destination 10.99.0.2:80
$nat --dport 40003 --to-destination 127.0.0.1:39999
exec "$@"
"""
CHECK = """
import json, socket
from pods.runtime import process

decoy = socket.create_server(("127.0.0.1", 39999))
def reaches(port):
    with socket.create_server(("127.0.0.1", port)) as server:
        return process.reaches(server)
print(json.dumps({
    "reaches": {port: reaches(port) for port in (40001, 40003, 40005)},
    "given": sorted({process.free_port() for _ in range(20)}),
}))
"""


def test_it_never_hands_out_a_host_port_the_hosts_nat_redirects():
    if os.geteuid() != 0:
        pytest.skip("a network namespace with its own NAT rules needs root")
    argv = ["/usr/bin/unshare", "--net", "/bin/sh", "-c", NETWORK, "sh"]
    argv += [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r})\n{CHECK}"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["reaches"] == {"40001": False, "40003": False, "40005": True}
    assert seen["given"] and not {40001, 40003} & set(seen["given"])
