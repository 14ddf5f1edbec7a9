"""Job webhooks: a job submitted with `"webhook": "<url>"` has its final status (the /status
JSON: id, status, output or error, delayTime, executionTime, workerId) POSTed to that URL once
it is COMPLETED, FAILED, CANCELLED or TIMED_OUT, as RunPod does.

The URL is attacker input (anyone with a key names it, and a hostile pod can submit jobs), so
the request is made defensively, with the standard library's sockets and nothing that reads
proxy settings or follows redirects:
- http or https only, no credentials in the URL, ASCII only (percent-encode the rest);
- the host is resolved once and the connection goes to that address, with the name kept for
  the Host header and TLS verification: a second lookup could answer differently (DNS
  rebinding). Private, loopback, link-local, shared, reserved and multicast addresses
  (also inside IPv4-mapped, 6to4 and NAT64 IPv6 addresses) are refused unless
  SERVERLESS_WEBHOOK_ALLOW_PRIVATE is on (tests; a LAN install);
- one deadline of TIMEOUT seconds covers connecting, TLS, sending and reading the answer
  (name resolution itself is the system resolver's and has its own timeout);
- only the status line is read, at most MAX_RESPONSE_BYTES; a 2xx is delivered, anything else
  (a 3xx too: redirects are never followed) is a failed attempt;
- a failed attempt is retried RETRIES times, RETRY_DELAY seconds apart (RunPod: twice, 10 s);
  a refused URL is not retried.

Each attempt is logged; the last one's result is kept on the job (webhook_attempts,
webhook_result, webhook_delivered_at) and the outcome is audited once per finish
(job.webhook_delivered / job.webhook_failed, naming the host only: a URL may carry a token).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from serverless.models import Job
from teams import audit

logger = logging.getLogger(__name__)

TIMEOUT = 10.0
RETRIES = 2
RETRY_DELAY = 10
MAX_RESPONSE_BYTES = 8192
USER_AGENT = "gpu-console-webhook/1"
STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3})[ \r]")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(Exception):
    """The URL may not be called: recorded, never retried."""


class Failed(Exception):
    """One attempt failed: retried while retries remain."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_target(url: str) -> Target:
    if not url.isascii() or any(ord(c) <= 0x20 or c == "\x7f" for c in url):
        raise Refused("the URL must be ASCII without spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused("only http and https URLs are called")
    if parts.username is not None or parts.password is not None:
        raise Refused("credentials in the URL are not sent")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("the URL's port is not a number from 1 to 65535") from None
    if not parts.hostname or port == 0:
        raise Refused("the URL names no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path)


def _embedded_ipv4(ip: ipaddress._BaseAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries to the same host or a gateway's network."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _why_not_public(ip: ipaddress._BaseAddress) -> str | None:
    for name in ("loopback", "link_local", "multicast", "unspecified", "private", "reserved"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    return None if ip.is_global else "non-global"


def check_address(address: str) -> None:
    """Refuse an address the console's own network could reach but the internet could not
    (its services, the cloud metadata endpoint, other tenants' pods)."""
    if settings.SERVERLESS_WEBHOOK_ALLOW_PRIVATE:
        return
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    for candidate in (ip, _embedded_ipv4(ip)):
        why = candidate is not None and _why_not_public(candidate)
        if why:
            article = "an" if why[0] in "aeiou" else "a"
            raise Refused(f"{address} is {article} {why} address")


def resolve(target: Target) -> tuple:
    """The one socket address the request goes to (checked)."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise Failed(f"cannot resolve {target.host}: {error}") from None
    family, _, _, _, address = infos[0]
    check_address(address[0])
    return family, address


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise Failed(f"timed out after {TIMEOUT:g} s")
    return left


def _connect(target: Target, family: int, address: tuple, deadline: float) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(_remaining(deadline))
        sock.connect(address)
        if target.scheme == "https":
            context = ssl.create_default_context()
            sock.settimeout(_remaining(deadline))
            sock = context.wrap_socket(sock, server_hostname=target.host)
    except BaseException:
        sock.close()
        raise
    return sock


def _request(target: Target, body: bytes) -> bytes:
    head = (
        f"POST {target.path} HTTP/1.1\r\n"
        f"Host: {target.host_header}\r\n"
        f"User-Agent: {USER_AGENT}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _status(sock: socket.socket, deadline: float) -> int:
    """The response's status code, reading no more than the status line (bounded)."""
    received = b""
    while b"\n" not in received and len(received) < MAX_RESPONSE_BYTES:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(MAX_RESPONSE_BYTES - len(received))
        if not chunk:
            break
        received += chunk
    match = STATUS_LINE.match(received)
    if match is None:
        raise Failed("the answer is not an HTTP response")
    return int(match[1])


def post(url: str, body: bytes) -> int:
    """POST `body` to `url` once, as the module docstring says; the HTTP status code."""
    target = parse_target(url)
    family, address = resolve(target)
    deadline = time.monotonic() + TIMEOUT
    try:
        with _connect(target, family, address, deadline) as sock:
            sock.settimeout(_remaining(deadline))
            sock.sendall(_request(target, body))
            return _status(sock, deadline)
    except TimeoutError:
        raise Failed(f"timed out after {TIMEOUT:g} s") from None
    except (OSError, ssl.SSLError) as error:
        raise Failed(f"{type(error).__name__}: {error}"[:200]) from None


# The task ------------------------------------------------------------------------------------


def enqueue(job: Job) -> None:
    """Queue the webhook of a job reaching a final state, once that state is committed (a
    rolled-back finish sends nothing). Called by serverless.services._finish."""
    if not job.webhook:
        return
    pk, finished = job.pk, job.completed_at.isoformat()
    transaction.on_commit(lambda: _queue(pk, finished))


def _queue(pk: int, finished: str) -> None:
    try:
        deliver_job_webhook.delay(pk, finished)
    except Exception:  # the broker is down: the job's result stands, only the hook is lost
        logger.exception("Could not queue the webhook of job %s", pk)


def _job_to_deliver(pk: int, finished: str) -> Job | None:
    """The job as it finished at `finished`, unless it changed since (retried, deleted) or
    this finish was already delivered (the task ran twice)."""
    job = Job.objects.select_related("worker", "endpoint__team").filter(pk=pk).first()
    if job is None or not job.is_final or job.completed_at != parse_datetime(finished):
        return None
    delivered = job.webhook_delivered_at
    return None if delivered and delivered >= job.completed_at else job


def _attempt(job: Job) -> tuple[bool, str, bool]:
    """(delivered, result, retry) of one POST of the job's status."""
    from serverless.services import job_status  # services imports this module

    body = json.dumps(job_status(job), ensure_ascii=False).encode()
    try:
        code = post(job.webhook, body)
    except Refused as error:
        return False, f"refused: {error}", False
    except Failed as error:
        return False, str(error), True
    return 200 <= code < 300, f"HTTP {code}", not 200 <= code < 300


def _record(job: Job, attempt: int, delivered: bool, result: str, final: bool) -> None:
    host = urlsplit(job.webhook).hostname or ""
    logger.info("Webhook of job %s to %s, attempt %d: %s", job.public_id, host, attempt, result)
    with transaction.atomic():
        Job.objects.filter(pk=job.pk, completed_at=job.completed_at).update(
            webhook_attempts=attempt,
            webhook_result=result[:300],
            webhook_delivered_at=timezone.now() if delivered else None,
        )
        if final:
            audit.record(
                actor=None,
                team=job.endpoint.team,
                action="job.webhook_delivered" if delivered else "job.webhook_failed",
                resource_type="job",
                resource_id=job.public_id,
                details={"host": host, "attempts": attempt, "result": result[:300]},
            )


@shared_task(ignore_result=True)
def deliver_job_webhook(pk: int, finished: str, attempt: int = 1) -> str:
    """One attempt at POSTing a finished job's status to its webhook; a failure queues the
    next attempt RETRY_DELAY seconds later (RETRIES at most; a message of its own, so no
    worker waits in between). Safe to run twice: a delivered finish is not sent again."""
    job = _job_to_deliver(pk, finished)
    if job is None:
        return "skipped"
    delivered, result, retry = _attempt(job)
    retry = retry and attempt <= RETRIES
    _record(job, attempt, delivered, result, final=not retry)
    if retry:
        deliver_job_webhook.apply_async((pk, finished, attempt + 1), countdown=RETRY_DELAY)
    return result
