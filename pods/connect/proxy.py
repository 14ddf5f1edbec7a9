"""The proxy's decisions, independent of how bytes move (pods.connect.asgi moves them).

Two URL forms reach a pod's HTTP port `port`:
  host form  <scheme>://<pod id>-<port>.<PROXY_DOMAIN>[:<console port>]/<path>   the one the
             console links to: each pod port is an origin of its own, away from the console's
             cookies and pages;
  path form  <SITE_URL>/proxy/<pod id>-<port>/<path>   kept for scripts and for installations
             without a PROXY_DOMAIN; it is the console's origin, so every response is inert
             there: a `sandbox` CSP (an opaque origin), nosniff, no cookies either way.
Access follows Pod.proxy_access: "public" lets anyone in; "team" needs a member with the "use"
capability, known from the console session (path form) or, on the pod's own host where the
console's cookie is not sent, from a signed per-host cookie handed over by the console with a
single-use token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import import_module
from types import SimpleNamespace
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.core.cache import cache
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.crypto import get_random_string
from django.utils.timezone import now

from pods.lifecycle import log_tail
from pods.models import Pod, ProxyAccess
from teams.access import role_can
from teams.models import Membership, User

PATH_PREFIX = "/proxy/"
TARGET = re.compile(r"^(?P<pod>[a-z0-9]{4,32})-(?P<port>\d{1,5})$")
PROXY_COOKIE = "console_proxy"
# On https the cookie is __Host- prefixed: browsers then refuse it from any Set-Cookie or
# script that carries a Domain attribute, so a sibling pod cannot plant one on this host.
PROXY_COOKIE_NAMES = frozenset({PROXY_COOKIE, "__Host-" + PROXY_COOKIE})
PROXY_COOKIE_MAX_AGE = 12 * 3600
HANDOFF_PATH = "/.console-proxy-auth"
HANDOFF_MAX_AGE = 60
HANDOFF_CACHE_PREFIX = "pods.proxy.handoff:"
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
# Pod pages on the console's origin (the path form) must not act as the visitor on the
# console: without allow-same-origin they run in an opaque origin, away from console pages,
# cookies and storage, and their requests to the console carry Origin: null.
SANDBOX = (
    "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads "
    "allow-popups-to-escape-sandbox"
)
# Response headers a pod never gets to send: Clear-Site-Data "cookies" would wipe the cookies
# of the whole registrable domain (the console's, on the path form), HSTS on the path form
# would pin the console's host. Set-Cookie is handled apart.
POD_HEADERS_REFUSED = frozenset({b"clear-site-data", b"set-cookie2"})
PATH_FORM_REFUSED = POD_HEADERS_REFUSED | {
    b"set-cookie",
    b"strict-transport-security",
    b"x-content-type-options",
}
# The proxy's own pages (errors, sign-in): no script at all, styles from the console.
PAGE_CSP = (
    "default-src 'none'; style-src {site}; font-src {site}; img-src {site} data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
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
    """Proxy to `upstream` ("host:port"), or answer with `status` and `body`/`location`.
    With an upstream, `pod` is the pod asked for and `team_view` whether the visitor may read
    its log (a member who may use it), for the page shown when nothing answers."""

    upstream: str = ""
    status: int = 200
    body: bytes = b""
    location: str = ""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    pod: Pod | None = None
    team_view: bool = False


# URLs ----------------------------------------------------------------------------------------


def proxy_domain() -> str:
    return settings.PROXY_DOMAIN.strip().strip(".").lower()


def site_is_https() -> bool:
    return settings.SITE_URL.startswith("https://")


def pod_host_suffix() -> str:
    """ ".localhost:8000" for PROXY_DOMAIN=localhost and SITE_URL=http://localhost:8000: pod hosts
    are served by the console's server, so they carry its port unless PROXY_DOMAIN names one."""
    domain = proxy_domain()
    if not domain:
        return ""
    if ":" not in domain and (port := urlsplit(settings.SITE_URL).port):
        domain = f"{domain}:{port}"
    return "." + domain


def path_url(pod_id: str, port: int) -> str:
    return f"{settings.SITE_URL}{PATH_PREFIX}{pod_id}-{port}/"


def host_url(pod_id: str, port: int) -> str | None:
    suffix = pod_host_suffix()
    if not suffix:
        return None
    return f"{'https' if site_is_https() else 'http'}://{pod_id}-{port}{suffix}/"


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


def cookie_pairs(scope: dict) -> list[tuple[str, str]]:
    """Every cookie the client sent, in order, duplicates included."""
    pairs = []
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, val = part.strip().partition("=")
                if name:
                    pairs.append((name, val))
    return pairs


def cookies(scope: dict) -> dict[str, str]:
    jar: dict[str, str] = {}
    for name, value in cookie_pairs(scope):
        jar.setdefault(name, value)
    return jar


# Who is asking -------------------------------------------------------------------------------


def session_user(jar: dict[str, str]):
    """The console session's user (path form), like django.contrib.auth.get_user."""
    key = jar.get(settings.SESSION_COOKIE_NAME)
    if not key:
        return AnonymousUser()
    store = import_module(settings.SESSION_ENGINE).SessionStore(key)
    return get_user(SimpleNamespace(session=store))


def cookie_user(pairs: list[tuple[str, str]], target: Target):
    """The user a signed per-host cookie names (host form), if it is for this pod and port and
    the user's password has not changed since. Every proxy cookie sent is tried: one planted
    by a sibling pod (Domain=PROXY_DOMAIN, a longer Path, sent first) must not hide ours."""
    for name, value in pairs:
        if name in PROXY_COOKIE_NAMES and (user := _signed_user(value, target)):
            return user
    return AnonymousUser()


def _signed_user(value: str, target: Target) -> User | None:
    try:
        data = signing.loads(value, salt=COOKIE_SALT, max_age=PROXY_COOKIE_MAX_AGE)
    except signing.BadSignature:
        return None
    user = User.objects.filter(pk=data.get("u"), is_active=True).first()
    if user is None or data.get("t") != target.label or data.get("h") != auth_hash(user):
        return None
    return user


def auth_hash(user) -> str:
    return user.get_session_auth_hash()[:16]


def proxy_cookie(user, target: Target) -> str:
    return signing.dumps({"u": user.pk, "t": target.label, "h": auth_hash(user)}, salt=COOKIE_SALT)


def proxy_cookie_name(secure: bool) -> str:
    return ("__Host-" if secure else "") + PROXY_COOKIE


def handoff_token(user, target: Target, next_path: str) -> str:
    """A signed, one-minute, single-use token: its id is remembered in the cache (Redis when
    REDIS_URL is set, so every console and proxy process sees it) until the proxy consumes it."""
    token_id = get_random_string(32)
    cache.set(HANDOFF_CACHE_PREFIX + token_id, user.pk, HANDOFF_MAX_AGE)
    data = {"u": user.pk, "t": target.label, "n": next_path, "j": token_id}
    return signing.dumps(data, salt=HANDOFF_SALT)


def read_handoff(token: str, target: Target) -> tuple[User, str] | None:
    """The token's user and path, once: the cache entry is deleted atomically (one DEL in
    Redis), and only the request that deleted it gets the user."""
    try:
        data = signing.loads(token, salt=HANDOFF_SALT, max_age=HANDOFF_MAX_AGE)
    except signing.BadSignature:
        return None
    if data.get("t") != target.label or not cache.delete(HANDOFF_CACHE_PREFIX + data.get("j", "")):
        return None
    user = User.objects.filter(pk=data.get("u"), is_active=True).first()
    return (user, safe_next(data.get("n", "/"))) if user else None


UNSAFE_IN_PATH = re.compile(r"[^\x21-\x7e]|\\")


def safe_next(path: str) -> str:
    """Only a path on the same host, else "/". Browsers read "/\\host" as "//host" and drop
    tabs and newlines from URLs ("/\\t/host"), so backslashes, control characters, spaces and
    anything outside printable ASCII (browsers send paths percent-encoded) are refused
    outright, as are schemes and "//"."""
    if not path.startswith("/") or path.startswith("//") or UNSAFE_IN_PATH.search(path):
        return "/"
    parts = urlsplit(path)
    if parts.scheme or parts.netloc:
        return "/"
    return path


# Deciding ------------------------------------------------------------------------------------


def page(status: int, title: str, message: str, **extra) -> Verdict:
    """One of the proxy's own pages. Anything from the pod in `extra` (its log) is escaped by
    the template, and PAGE_CSP allows no script at all, so the page stays inert."""
    site = settings.SITE_URL
    context = {"status": status, "title": title, "message": message, "site": site, **extra}
    body = render_to_string("pods/connect/proxy_error.html", context).encode()
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"cache-control", b"no-store"),
        (b"content-security-policy", PAGE_CSP.format(site=site).encode()),
        (b"x-content-type-options", b"nosniff"),
    ]
    if extra.get("retry_seconds"):
        headers.append((b"retry-after", str(extra["retry_seconds"]).encode()))
    return Verdict(status=status, body=body, headers=headers)


# While a pod is starting, or its server was started less than this long ago (an install at
# first start can take minutes), the "not answering" pages reload themselves.
RETRY_SECONDS = 5
RETRY_WHILE_UP = timedelta(minutes=15)
LOG_TAIL_LINES = 30
INSTALLING = re.compile(r"\binstall", re.IGNORECASE)


def _pod_help(pod: Pod, team_view: bool) -> dict:
    """What the waiting pages show of a pod: its log tail (to its team only: logs may hold
    anything the pod printed) and the console's page of it."""
    if not team_view:
        return {"pod_status": pod.status}
    return {
        "pod_status": pod.status,
        "log_tail": log_tail(pod, lines=LOG_TAIL_LINES),
        "pod_url": settings.SITE_URL + pod.get_absolute_url(),
    }


def _still_coming_up(pod: Pod) -> bool:
    if pod.status in (Pod.Status.CREATED, Pod.Status.STARTING):
        return True
    started = pod.started_at
    return pod.status == Pod.Status.RUNNING and bool(started) and now() - started < RETRY_WHILE_UP


def not_running(pod: Pod, target: Target, team_view: bool) -> Verdict:
    status = pod.get_status_display().lower()
    if _still_coming_up(pod):
        title, message = "Pod starting", f"Pod {pod.public_id} is {status}: this page reloads."
    else:
        title = "Pod not running"
        message = f"Pod {pod.public_id} is {status}. Start it, then reload this page."
    extra = _pod_help(pod, team_view)
    retry = RETRY_SECONDS if _still_coming_up(pod) else None
    return page(503, title, message, target=target, retry_seconds=retry, **extra)


def no_answer(pod: Pod, target: Target, team_view: bool) -> Verdict:
    """The pod runs but nothing accepted the connection on the port: say why we think so."""
    pod.refresh_from_db(fields=["status", "started_at"])
    if pod.status != Pod.Status.RUNNING:
        return not_running(pod, target, team_view)
    recent = "\n".join(log_tail(pod, lines=5).splitlines()[-5:])
    if INSTALLING.search(recent):
        title = "Still installing"
        message = (
            f"Pod {pod.public_id} is still installing its software (see its log): nothing "
            f"listens on port {target.port} yet."
        )
    else:
        title = "No answer from the pod"
        message = f"Nothing listens on port {target.port} of pod {pod.public_id} yet."
    retry = RETRY_SECONDS if _still_coming_up(pod) else None
    if retry:
        message += " This page reloads until it answers."
    extra = _pod_help(pod, team_view)
    return page(502, title, message, target=target, retry_seconds=retry, **extra)


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


def may_use(pod: Pod, user) -> bool:
    if not user.is_authenticated:
        return False
    membership = Membership.objects.filter(user=user, team_id=pod.team_id).first()
    return membership is not None and role_can(membership.role, "use")


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
    # Team-only ports reach here only for members who may use the pod.
    team_view = not public or may_use(pod, user)
    if pod.status != Pod.Status.RUNNING or mapping is None:
        return not_running(pod, target, team_view)
    upstream = f"{mapping['host']}:{mapping['public']}"
    return Verdict(upstream=upstream, pod=pod, team_view=team_view)


# Headers -------------------------------------------------------------------------------------


def pod_cookie_header(scope: dict, route: Route) -> str:
    """What the pod may see of the client's cookies. On its own host: all but the proxy's
    access cookie (the console's are host-only and never sent there). On the path form, the
    console's origin: none, since every cookie there is the console's (pods cannot set any)."""
    if not route.host_form:
        return ""
    pairs = cookie_pairs(scope)
    return "; ".join(f"{n}={v}" for n, v in pairs if n not in PROXY_COOKIE_NAMES)


def _connection_tokens(headers) -> set[str]:
    tokens = set()
    for key, value in headers:
        if key.lower() == b"connection":
            tokens |= {t.strip().lower() for t in value.decode("latin-1").split(",")}
    return tokens


def upstream_headers(scope: dict, route: Route, *, drop: frozenset = frozenset()) -> list:
    """The client's headers minus hop-by-hop ones, with only the cookies pod_cookie_header
    lets through, plus X-Forwarded-*. Host is kept as the client sent it (apps check Origin
    against it)."""
    skip = HOP_BY_HOP | drop | _connection_tokens(scope.get("headers", []))
    skip |= {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix"}
    skip |= {"cookie"}
    out = []
    for key, raw in scope.get("headers", []):
        name, value = key.decode("latin-1").lower(), raw.decode("latin-1")
        if name not in skip and value:
            out.append((name, value))
    if cookie := pod_cookie_header(scope, route):
        out.append(("cookie", cookie))
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


def host_only_cookie(value: bytes) -> bytes | None:
    """A pod's Set-Cookie for its own host: without any Domain attribute (a pod on
    x.localhost must not set cookies on localhost), and never the proxy's access cookie."""
    name, *attributes = value.decode("latin-1").split(";")
    if name.partition("=")[0].strip().lower() in {n.lower() for n in PROXY_COOKIE_NAMES}:
        return None
    kept = [a for a in attributes if a.partition("=")[0].strip().lower() != "domain"]
    return ";".join([name, *kept]).encode("latin-1")


def downstream_headers(raw: list[tuple[bytes, bytes]], *, host_form: bool) -> list:
    """The pod's response headers minus hop-by-hop ones. On its own host its cookies become
    host-only; on the path form (the console's origin) it sets none and its page is inert."""
    skip = {name.encode() for name in HOP_BY_HOP} | {t.encode() for t in _connection_tokens(raw)}
    skip |= POD_HEADERS_REFUSED if host_form else PATH_FORM_REFUSED
    out = []
    for key, value in raw:
        key = key.lower()
        if key in skip:
            continue
        if key == b"set-cookie" and (value := host_only_cookie(value)) is None:
            continue
        out.append((key, value))
    if not host_form:
        out.append((b"content-security-policy", SANDBOX.encode()))
        out.append((b"x-content-type-options", b"nosniff"))
    return out
