"""What the Connect menu and the Ports card offer for a pod: proxy URLs of its HTTP ports, the
SSH command when it exposes TCP 22, its other TCP ports as a remote user reaches them, and the
web terminal."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pods.connect.proxy import host_url, path_url
from pods.models import Pod


@dataclass(frozen=True)
class HttpLink:
    port: int
    label: str  # the template's label for the port, or "" (never guessed from the number)
    url: str  # the one to open: the host form when PROXY_DOMAIN is set
    path_url: str
    host_url: str | None


@dataclass(frozen=True)
class TcpLink:
    port: int
    label: str
    host: str
    public_port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.public_port}"

    @property
    def local_only(self) -> bool:
        """Published on a loopback address: only the machine itself reaches it (the process
        runtime forwards ports on 127.0.0.1; a docker machine without a public host)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True)
class Connect:
    running: bool
    status: str
    http: list[HttpLink]
    tcp: list[TcpLink]
    tcp_declared: list[tuple[int, str]]  # (port, template label) whether mapped or not
    ssh_command: str

    @property
    def anything(self) -> bool:
        return bool(self.http or self.tcp or self.running)

    @property
    def tcp_rows(self) -> list[tuple[int, str, TcpLink | None]]:
        """Every declared TCP port with its label and, while the pod runs, its address."""
        mapped = {link.port: link for link in self.tcp}
        return [(port, label, mapped.get(port)) for port, label in self.tcp_declared]

    @property
    def terminated(self) -> bool:
        return self.status == Pod.Status.TERMINATED

    @property
    def coming_up(self) -> bool:
        return self.status in (Pod.Status.CREATED, Pod.Status.STARTING)


def _label(pod: Pod, port: int) -> str:
    return pod.template.port_label(port) if pod.template_id and pod.template else ""


def connect_for(pod: Pod) -> Connect:
    running = pod.status == Pod.Status.RUNNING
    http = []
    for port in (p["port"] for p in pod.ports if p.get("protocol") == "http"):
        by_path, by_host = path_url(pod.public_id, port), host_url(pod.public_id, port)
        http.append(HttpLink(port, _label(pod, port), by_host or by_path, by_path, by_host))
    tcp = []
    if running:
        for mapping in pod.port_mappings:
            if mapping["protocol"] == "tcp":
                port = mapping["private"]
                tcp.append(TcpLink(port, _label(pod, port), mapping["host"], mapping["public"]))
    declared = [(p["port"], _label(pod, p["port"])) for p in pod.ports if p["protocol"] == "tcp"]
    ssh = next((t for t in tcp if t.port == 22), None)
    command = f"ssh root@{ssh.host} -p {ssh.public_port} -i ~/.ssh/id_ed25519" if ssh else ""
    return Connect(running, pod.status, http, tcp, declared, command)
