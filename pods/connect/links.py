"""What the Connect menu offers for a pod: proxy URLs of its HTTP ports, the SSH command when
it exposes TCP 22, its other TCP ports, and the web terminal."""

from __future__ import annotations

from dataclasses import dataclass

from pods.connect.proxy import host_url, path_url
from pods.models import Pod

KNOWN_PORTS = {8888: "Jupyter Lab", 8080: "HTTP service", 7860: "Gradio", 3000: "Web app"}


@dataclass(frozen=True)
class HttpLink:
    port: int
    label: str
    url: str  # the one to open: the host form when PROXY_DOMAIN is set
    path_url: str
    host_url: str | None


@dataclass(frozen=True)
class TcpLink:
    port: int
    host: str
    public_port: int


@dataclass(frozen=True)
class Connect:
    running: bool
    http: list[HttpLink]
    tcp: list[TcpLink]
    ssh_command: str

    @property
    def anything(self) -> bool:
        return bool(self.http or self.tcp or self.running)


def connect_for(pod: Pod) -> Connect:
    running = pod.status == Pod.Status.RUNNING
    http = []
    for port in (p["port"] for p in pod.ports if p.get("protocol") == "http"):
        by_path, by_host = path_url(pod.public_id, port), host_url(pod.public_id, port)
        label = KNOWN_PORTS.get(port, "HTTP service")
        http.append(HttpLink(port, label, by_host or by_path, by_path, by_host))
    tcp = []
    if running:
        for mapping in pod.port_mappings:
            if mapping["protocol"] == "tcp":
                tcp.append(TcpLink(mapping["private"], mapping["host"], mapping["public"]))
    ssh = next((t for t in tcp if t.port == 22), None)
    command = f"ssh root@{ssh.host} -p {ssh.public_port} -i ~/.ssh/id_ed25519" if ssh else ""
    return Connect(running, http, tcp, command)
