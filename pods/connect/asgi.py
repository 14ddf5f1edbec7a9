"""The proxy at the ASGI level, in front of Django and Channels (console/asgi.py wraps the
application in ProxyRouter). Bodies stream both ways, chunk by chunk: Django's request handling
would read a whole upload first, so proxied requests never enter it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, quote

import httpx
from channels.db import database_sync_to_async
from django.http.request import split_domain_port, validate_host
from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from pods.connect import proxy
from pods.connect.proxy import Route, Verdict

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(connect=10.0, read=None, write=None, pool=10.0)
WS_DROP = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"}
    | {"sec-websocket-protocol", "host"}
)
WS_MAX_MESSAGE = 64 * 1024**2
_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class ProxyRouter:
    """Sends /proxy/<pod>-<port>/… and <pod>-<port>.<PROXY_DOMAIN> to the pod; the rest on."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send) -> None:
        route = proxy.route_for(scope) if scope["type"] in ("http", "websocket") else None
        if route is None:
            return await self.application(scope, receive, send)
        if scope["type"] == "websocket":
            return await proxy_websocket(scope, receive, send, route)
        return await proxy_http(scope, receive, send, route)


def upstream_client() -> httpx.AsyncClient:
    """One pooled client per event loop (tests run several loops, daphne one)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=50)
        client = httpx.AsyncClient(timeout=TIMEOUT, limits=limits, trust_env=False)
        _clients[loop] = client
    return client


def full_path(scope: dict) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope.get("raw_path", b"").decode("latin-1") or quote(scope["path"])
    return path + (f"?{query}" if query else "")


@database_sync_to_async
def _verdict(scope: dict, route: Route) -> Verdict:
    # On a pod's own host the console's session cookie is not sent: its own cookie says who.
    if route.host_form:
        user = proxy.cookie_user(proxy.cookie_pairs(scope), route.target)
    else:
        user = proxy.session_user(proxy.cookies(scope))
    return proxy.decide(route, user, full_path=full_path(scope))


# HTTP ----------------------------------------------------------------------------------------


async def respond(send, verdict: Verdict) -> None:
    headers = list(verdict.headers)
    if verdict.location:
        headers.append((b"location", verdict.location.encode("latin-1")))
    await send({"type": "http.response.start", "status": verdict.status, "headers": headers})
    await send({"type": "http.response.body", "body": verdict.body})


async def proxy_http(scope, receive, send, route: Route) -> None:
    if route.host_form and route.path == proxy.HANDOFF_PATH:
        return await respond(send, await _handoff(scope, route))
    if not route.path:  # /proxy/<pod>-<port> -> with a slash, so relative links resolve
        query = scope.get("query_string", b"").decode("latin-1")
        location = route.prefix + "/" + (f"?{query}" if query else "")
        return await respond(send, Verdict(status=302, location=location))
    verdict = await _verdict(scope, route)
    if not verdict.upstream:
        return await respond(send, verdict)
    await forward(scope, receive, send, route, verdict)


async def request_body(receive):
    """The client's body as it arrives, never all of it in memory."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError("the client went away")
        if message.get("body"):
            yield message["body"]
        if not message.get("more_body"):
            return


def upstream_request(scope, receive, route: Route, verdict: Verdict) -> httpx.Request:
    headers = proxy.upstream_headers(scope, route)
    has_body = any(name in ("content-length", "transfer-encoding") for name, _ in headers)
    has_body = has_body or proxy.header(scope, b"transfer-encoding") != ""
    query = scope.get("query_string", b"").decode("latin-1")
    raw = scope.get("raw_path", b"").decode("latin-1")
    path = raw[len(route.prefix) :] if raw and route.prefix else (raw or quote(route.path))
    url = f"http://{verdict.upstream}{path or '/'}" + (f"?{query}" if query else "")
    # A Request built by hand carries exactly these headers (build_request would add httpx's
    # defaults, e.g. an Accept-Encoding the client never sent).
    content = request_body(receive) if has_body else None
    return httpx.Request(scope["method"], url, headers=headers, content=content)


async def forward(scope, receive, send, route: Route, verdict: Verdict) -> None:
    request = upstream_request(scope, receive, route, verdict)
    try:
        response = await upstream_client().send(request, stream=True)
    except httpx.TransportError as error:
        log.info("proxy %s: %s", route.target.label, error)
        no_answer = database_sync_to_async(proxy.no_answer)
        return await respond(send, await no_answer(verdict.pod, route.target, verdict.team_view))
    try:
        headers = proxy.downstream_headers(response.headers.raw, host_form=route.host_form)
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except httpx.TransportError as error:
        log.info("proxy %s: upstream broke off: %s", route.target.label, error)
    finally:
        await response.aclose()


@database_sync_to_async
def _handoff(scope: dict, route: Route) -> Verdict:
    """The console sent the browser here with a one-minute, single-use token: turn it into this
    host's cookie and go on to the page it asked for (a path on this host, checked again)."""
    token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
    found = proxy.read_handoff(token, route.target)
    if found is None:
        message = "This sign-in link has expired. Open the port again from the console."
        return proxy.page(400, "Link expired", message, target=route.target)
    user, next_path = found
    # The public scheme is SITE_URL's (a TLS proxy in front may speak plain HTTP to us).
    secure = proxy.site_is_https() or scope.get("scheme") == "https"
    name = proxy.proxy_cookie_name(secure)
    cookie = SimpleCookie()
    cookie[name] = proxy.proxy_cookie(user, route.target)
    morsel = cookie[name]
    morsel.update({"path": "/", "httponly": True, "samesite": "Lax"})
    morsel["max-age"] = proxy.PROXY_COOKIE_MAX_AGE
    morsel["secure"] = secure
    headers = [
        (b"set-cookie", morsel.OutputString().encode("latin-1")),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-store"),
    ]
    return Verdict(status=302, location=next_path, headers=headers)


# WebSocket -----------------------------------------------------------------------------------


class ForwardingConnection(ClientConnection):
    """Sends the client's Host header to the pod instead of the upstream address, so apps that
    compare Origin with Host (Jupyter) accept proxied sockets."""

    async def handshake(self, additional_headers=None, user_agent_header=None) -> None:
        headers = Headers(additional_headers or {})
        host = headers.get("X-Console-Host")
        del headers["X-Console-Host"]
        build = self.protocol.connect

        def with_host():
            request = build()
            if host:
                del request.headers["Host"]
                request.headers["Host"] = host
            return request

        self.protocol.connect = with_host
        await super().handshake(headers, user_agent_header)


def origin_allowed(scope: dict) -> bool:
    """A browser page may open a proxied socket only from the console or from the pod's own
    host; tools without an Origin header carry no ambient cookies and are let through."""
    origin = proxy.header(scope, b"origin")
    if not origin:
        return True
    origin_host = split_domain_port(origin.split("://", 1)[-1])[0]
    own_host = split_domain_port(proxy.header(scope, b"host"))[0]
    from django.conf import settings

    return origin_host == own_host or validate_host(origin_host, settings.ALLOWED_HOSTS)


async def proxy_websocket(scope, receive, send, route: Route) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    verdict = await _verdict(scope, route) if origin_allowed(scope) else None
    if verdict is None or not verdict.upstream:
        await send({"type": "websocket.close", "code": 4403})  # before accept: HTTP 403
        return
    try:
        upstream = await open_upstream(scope, route, verdict)
    except (OSError, InvalidHandshake, TimeoutError) as error:
        log.info("proxy %s: websocket refused upstream: %s", route.target.label, error)
        await send({"type": "websocket.close", "code": 4502})
        return
    async with upstream:
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
        await pipe(receive, send, upstream)


async def open_upstream(scope, route: Route, verdict: Verdict) -> ClientConnection:
    raw = scope.get("raw_path", b"").decode("latin-1") or quote(scope["path"])
    path = raw[len(route.prefix) :] if route.prefix else raw
    query = scope.get("query_string", b"").decode("latin-1")
    uri = f"ws://{verdict.upstream}{path or '/'}" + (f"?{query}" if query else "")
    headers = proxy.upstream_headers(scope, route, drop=WS_DROP)
    headers.append(("x-console-host", proxy.header(scope, b"host")))
    return await connect(
        uri,
        additional_headers=headers,
        subprotocols=scope.get("subprotocols") or None,
        create_connection=ForwardingConnection,
        proxy=None,
        open_timeout=10,
        max_size=WS_MAX_MESSAGE,
        user_agent_header=None,
    )


async def pipe(receive, send, upstream: ClientConnection) -> None:
    """Frames both ways until either side closes; the other side is then closed too."""

    async def from_client() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] == "websocket.receive":
                data = message.get("bytes")
                await upstream.send(data if data is not None else message.get("text", ""))

    async def from_pod() -> None:
        async for data in upstream:
            key = "bytes" if isinstance(data, bytes) else "text"
            await send({"type": "websocket.send", key: data})

    tasks = [asyncio.ensure_future(from_client()), asyncio.ensure_future(from_pod())]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() and not isinstance(task.exception(), ConnectionClosed):
            log.info("proxy websocket ended: %s", task.exception())
    if tasks[1] in done:  # the pod closed: tell the browser, with the pod's code
        code = upstream.close_code if upstream.close_code in range(3000, 5000) else 1000
        await send({"type": "websocket.close", "code": code})
