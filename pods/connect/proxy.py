"""The proxy's decisions, independent of how bytes move (pods.connect.asgi moves them).

Two URL forms reach a pod's HTTP port `port`:
  path form  <SITE_URL>/proxy/<pod id>-<port>/<path>   always; the app sees /<path> and the
             prefix in X-Forwarded-Prefix;
  host form  <scheme>://<pod id>-<port>.<PROXY_DOMAIN>/<path>   when PROXY_DOMAIN is set.
Access follows Pod.proxy_access: "public" lets anyone in; "team" needs a member with the "use"
capability, known from the console session (path form) or, on the pod's own host where the
console's cookie is not sent, from a signed per-host cookie handed over by the console.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import import_module
from types import SimpleNamespace
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.template.loader import render_to_string
from django.urls import reverse

from pods.models import Pod, ProxyAccess
from teams.access import role_can
from teams.models import Membership, User

PATH_PREFIX = "/proxy/"
TARGET = re.compile(r"^(?P<pod>[a-z0-9]{4,32})-(?P<port>\d{1,5})$")
PROXY_COOKIE = "console_proxy"
PROXY_COOKIE_MAX_AGE = 12 * 3600
HANDOFF_PATH = "/.console-proxy-auth"
HANDOFF_MAX_AGE = 60
HANDOFF_SALT = "pods.proxy.handoff"
COOKIE_SALT = "pods.proxy.cookie"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Public pages on the console's origin must not act as the visitor on the console: an opaque
# origin keeps their scripts away from console pages and cookies.
SANDBOX = (
    "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads "
    "allow-popups-to-escape-sandbox"
)


@dataclass(frozen=True)
class Target:
    pod_id: str
    port: int

    @property
    def label(self) -> str:
        return f"{self.pod_id}-{self.port}"

    @classmethod
    def parse(cls, text: str) -> Target | None:
        match = TARGET.match(text)
        if not match or not 0 < int(match["port"]) < 65536:
            return None
        return cls(match["pod"], int(match["port"]))


@dataclass
class Route:
    """Where a request is going: `path` is what the pod sees, `prefix` what was cut off."""

    target: Target
    path: str
    prefix: str = ""
    host_form: bool = False


@dataclass
class Verdict:
    """Proxy to `upstream` ("host:port"), or answer with `status` and `body`/`location`."""

    upstream: str = ""
    status: int = 200
    body: bytes = b""
    location: str = ""
    public: bool = False
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


# URLs ----------------------------------------------------------------------------------------


def proxy_domain() -> str:
    return settings.PROXY_DOMAIN.strip().strip(".").lower()


def path_url(pod_id: str, port: int) -> str:
    return f"{settings.SITE_URL}{PATH_PREFIX}{pod_id}-{port}/"


def host_url(pod_id: str, port: int) -> str | None:
    domain = proxy_domain()
    if not domain:
        return None
    scheme = "http" if settings.SITE_URL.startswith("http://") else "https"
    return f"{scheme}://{pod_id}-{port}.{domain}/"


def route_for(scope: dict) -> Route | None:
    """The proxy route of an ASGI http/websocket scope, or None for the console itself."""
    path = scope.get("path", "")
    host = header(scope, b"host").lower()
    domain = proxy_domain()
    if domain:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.endswith("." + domain.split(":")[0]):
            target = Target.parse(name[: -len(domain.split(":")[0]) - 1])
            if target:
                return Route(target, path or "/", host_form=True)
    if path.startswith(PATH_PREFIX):
        label, slash, rest = path[len(PATH_PREFIX) :].partition("/")
        target = Target.parse(label)
        if target:
            return Route(target, slash + rest, prefix=PATH_PREFIX + label)
    return None


def header(scope: dict, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def cookies(scope: dict) -> dict[str, str]:
    jar = {}
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, val = part.strip().partition("=")
                if name:
                    jar.setdefault(name, val)
    return jar


# Who is asking -------------------------------------------------------------------------------


def session_user(jar: dict[str, str]):
    """The console session's user (path form), like django.contrib.auth.get_user."""
    key = jar.get(settings.SESSION_COOKIE_NAME)
    if not key:
        return AnonymousUser()
    store = import_module(settings.SESSION_ENGINE).SessionStore(key)
    return get_user(SimpleNamespace(session=store))


def cookie_user(jar: dict[str, str], target: Target):
    """The user a signed per-host cookie names (host form), if it is for this pod and port and
    the user's password has not changed since."""
    try:
        data = signing.loads(
            jar.get(PROXY_COOKIE, ""), salt=COOKIE_SALT, max_age=PROXY_COOKIE_MAX_AGE
        )
    except signing.BadSignature:
        return AnonymousUser()
    user = User.objects.filter(pk=data.get("u"), is_active=True).first()
    if user is None or data.get("t") != target.label or data.get("h") != auth_hash(user):
        return AnonymousUser()
    return user


def auth_hash(user) -> str:
    return user.get_session_auth_hash()[:16]


def proxy_cookie(user, target: Target) -> str:
    return signing.dumps({"u": user.pk, "t": target.label, "h": auth_hash(user)}, salt=COOKIE_SALT)


def handoff_token(user, target: Target, next_path: str) -> str:
    data = {"u": user.pk, "t": target.label, "n": next_path}
    return signing.dumps(data, salt=HANDOFF_SALT)


def read_handoff(token: str, target: Target) -> tuple[User, str] | None:
    try:
        data = signing.loads(token, salt=HANDOFF_SALT, max_age=HANDOFF_MAX_AGE)
    except signing.BadSignature:
        return None
    user = User.objects.filter(pk=data.get("u"), is_active=True).first()
    if user is None or data.get("t") != target.label:
        return None
    return user, safe_next(data.get("n", "/"))


def safe_next(path: str) -> str:
    """Only a path on the same host: no scheme, no //host."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//"):
        return "/"
    return path


# Deciding ------------------------------------------------------------------------------------


def page(status: int, title: str, message: str, **extra) -> Verdict:
    context = {"status": status, "title": title, "message": message, **extra}
    body = render_to_string("pods/connect/proxy_error.html", context).encode()
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")]
    return Verdict(status=status, body=body, headers=headers)


def not_found(target: Target) -> Verdict:
    return page(
        404,
        "No such pod",
        f"There is no pod {target.pod_id} you can reach, or it was terminated.",
        target=target,
    )


def login_location(route: Route, full_path: str) -> str:
    if route.host_form:
        handoff = reverse("proxy_auth", args=[route.target.label])
        return f"{settings.SITE_URL}{handoff}?next={quote(full_path)}"
    return f"{reverse('account_login')}?next={quote(full_path)}"


def _team_refusal(pod: Pod, user, route: Route, full_path: str) -> Verdict | None:
    """None when `user` may use the pod's team-only ports."""
    if not user.is_authenticated:
        return Verdict(status=302, location=login_location(route, full_path))
    membership = Membership.objects.filter(user=user, team_id=pod.team_id).first()
    if membership is None:
        return not_found(route.target)
    if not role_can(membership.role, "use"):
        role = membership.get_role_display()
        message = f"Your role in {pod.team.name} ({role}) cannot connect to pods."
        return page(403, "Not allowed", message, target=route.target)
    return None


def decide(route: Route, user, *, full_path: str) -> Verdict:
    """Access first (outsiders learn nothing about the pod), then port, then status."""
    target = route.target
    pod = (
        Pod.objects.select_related("team")
        .filter(public_id=target.pod_id)
        .exclude(status=Pod.Status.TERMINATED)
        .first()
    )
    if pod is None:
        return not_found(target)
    public = pod.proxy_access == ProxyAccess.PUBLIC
    if not public and (refusal := _team_refusal(pod, user, route, full_path)):
        return refusal
    http_ports = [p["port"] for p in pod.ports if p.get("protocol") == "http"]
    if target.port not in http_ports:
        message = f"Pod {pod.public_id} does not expose port {target.port} over HTTP."
        return page(404, "Port not exposed", message, target=target, http_ports=http_ports)
    mapping = next((m for m in pod.port_mappings if m["private"] == target.port), None)
    if pod.status != Pod.Status.RUNNING or mapping is None:
        status = pod.get_status_display().lower()
        message = f"Pod {pod.public_id} is {status}. Start it, then reload this page."
        return page(503, "Pod not running", message, target=target, pod_status=pod.status)
    return Verdict(upstream=f"{mapping['host']}:{mapping['public']}", public=public)


# Headers -------------------------------------------------------------------------------------


def console_cookie_names() -> frozenset[str]:
    return frozenset(
        {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME, "messages", PROXY_COOKIE}
    )


def strip_console_cookies(value: str) -> str:
    """The console's own cookies never reach a pod (its code could replay a session)."""
    names = console_cookie_names()
    kept = [p.strip() for p in value.split(";") if p.strip().partition("=")[0] not in names]
    return "; ".join(part for part in kept if part)


def _connection_tokens(headers) -> set[str]:
    tokens = set()
    for key, value in headers:
        if key.lower() == b"connection":
            tokens |= {t.strip().lower() for t in value.decode("latin-1").split(",")}
    return tokens


def upstream_headers(scope: dict, route: Route, *, drop: frozenset = frozenset()) -> list:
    """The client's headers minus hop-by-hop ones and console cookies, plus X-Forwarded-*.
    Host is kept as the client sent it (apps check Origin against it)."""
    skip = HOP_BY_HOP | drop | _connection_tokens(scope.get("headers", []))
    skip |= {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix"}
    out = []
    for key, raw in scope.get("headers", []):
        name, value = key.decode("latin-1").lower(), raw.decode("latin-1")
        if name == "cookie":
            value = strip_console_cookies(value)
        if name not in skip and value:
            out.append((name, value))
    client = (scope.get("client") or ("",))[0]
    forwarded = ", ".join(v for v in (header(scope, b"x-forwarded-for"), client) if v)
    if forwarded:
        out.append(("x-forwarded-for", forwarded))
    scheme = {"wss": "https", "ws": "http"}.get(scope.get("scheme", ""), scope.get("scheme"))
    out.append(("x-forwarded-proto", scheme or "http"))
    out.append(("x-forwarded-host", header(scope, b"host")))
    if route.prefix:
        out.append(("x-forwarded-prefix", route.prefix))
    return out


def downstream_headers(raw: list[tuple[bytes, bytes]], *, sandbox: bool) -> list:
    """The pod's response headers minus hop-by-hop ones and cookies named like the console's."""
    skip = {name.encode() for name in HOP_BY_HOP} | {t.encode() for t in _connection_tokens(raw)}
    names = console_cookie_names()
    out = []
    for key, value in raw:
        key = key.lower()
        if key in skip:
            continue
        if key == b"set-cookie" and value.decode("latin-1").split("=", 1)[0].strip() in names:
            continue
        out.append((key, value))
    if sandbox:
        out.append((b"content-security-policy", SANDBOX.encode()))
    return out
