"""Pods on their own origin, tried as an attacker: a team member's hostile pod against the
console's cookies, the proxy's sign-in hand-off and its redirects, through the console's real
ASGI application and a real pod on the process runtime (tests/security/hostile_pod.py)."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import time_machine
from allauth.account.models import EmailAddress
from asgiref.sync import async_to_sync
from django import db
from django.test import Client

from console.asgi import application
from pods.connect import proxy
from pods.models import Pod
from teams.models import ApiKey, AuditEvent, Membership
from tests.conftest import make_user
from tests.pods.conftest import parts, pods_settings, reap  # noqa: F401 (fixtures)
from tests.pods.connect_helpers import Call, session_cookie
from tests.pods.factories import stopped_pod
from tests.security.hostile_pod import hostile_pod

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("reap")]

DOMAIN = "pods.test"


def call(**kwargs):
    return async_to_sync(Call(**kwargs).run)(application)


@pytest.fixture
def pod_host(settings):
    settings.SITE_URL = "http://console.test"
    settings.PROXY_DOMAIN = DOMAIN
    return lambda pod, port=8080: f"{pod.public_id}-{port}.{DOMAIN}"


@pytest.fixture
def pod(team, bob, parts) -> Pod:  # noqa: F811
    """bob (Dev of acme) runs the hostile pod; alice (Admin) is the victim."""
    return hostile_pod(team, bob, parts, console="http://console.test", toss_domain=DOMAIN)


@pytest.fixture
def parked(team, parts) -> Pod:  # noqa: F811
    """A pod that is not running: the hand-off happens before the proxy asks for the pod."""
    return stopped_pod(team, parts["machine"], ports=[{"port": 8080, "protocol": "http"}])


def hand_off(user, pod: Pod, next_path: str, port: int = 8080) -> str:
    """The console half of the sign-in: the pod-host URL (with its token) it redirects to."""
    client = Client()
    client.force_login(user)
    reply = client.get(f"/proxy-auth/{pod.public_id}-{port}/?next={quote(next_path)}")
    assert reply.status_code == 302, reply.status_code
    return reply["Location"]


def follow(location: str):
    """Open the hand-off URL on the pod's host, as the browser does."""
    url = urlsplit(location)
    return call(method="GET", path=url.path, query=url.query, host=url.netloc)


def signed_in_cookie(user, pod: Pod) -> bytes:
    reply = follow(hand_off(user, pod, "/"))
    assert reply.status == 302
    return reply.header("set-cookie").split(";")[0].encode()


def set_cookies(reply) -> dict[str, str]:
    """name -> the whole Set-Cookie line, for each cookie the reply sets."""
    return {line.split("=", 1)[0]: line for line in reply.all("set-cookie")}


# The hand-off ----------------------------------------------------------------------------------


def test_it_hands_off_once_and_audits_the_sign_in(parked, alice, pod_host):
    location = hand_off(alice, parked, "/lab?x=1")
    assert location.startswith(f"http://{pod_host(parked)}{proxy.HANDOFF_PATH}?token=")
    first = follow(location)
    assert (first.status, first.header("location")) == (302, "/lab?x=1")
    assert first.header("referrer-policy") == "no-referrer"
    replayed = follow(location)
    assert replayed.status == 400
    assert b"expired" in replayed.body and replayed.header("set-cookie") is None
    event = AuditEvent.objects.get(action="pod.proxy_signed_in")
    assert (event.actor, event.resource_id, event.details["port"]) == (
        alice,
        parked.public_id,
        8080,
    )


def test_a_hand_off_raced_by_many_requests_signs_in_exactly_one(parked, alice, pod_host):
    token = parse_qs(urlsplit(hand_off(alice, parked, "/")).query)["token"][0]
    target = proxy.Target(parked.public_id, 8080)

    def consume(_: int) -> bool:
        try:
            return proxy.read_handoff(token, target) is not None
        finally:
            db.connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(consume, range(16)))
    assert results.count(True) == 1


def test_it_refuses_a_hand_off_older_than_a_minute(parked, alice, pod_host):
    location = hand_off(alice, parked, "/")
    with time_machine.travel(timedelta(seconds=proxy.HANDOFF_MAX_AGE + 1), tick=False):
        late = follow(location)
    assert late.status == 400 and late.header("set-cookie") is None


def test_it_refuses_a_hand_off_for_another_port_or_a_forged_token(parked, alice, pod_host):
    location = hand_off(alice, parked, "/")
    other_port = location.replace(pod_host(parked), pod_host(parked, 9000))
    assert follow(other_port).status == 400
    url = urlsplit(location)
    forged = proxy.signing.dumps(
        {"u": alice.pk, "t": f"{parked.public_id}-8080", "n": "/", "j": "guessed"},
        salt=proxy.HANDOFF_SALT,
    )
    tampered = call(method="GET", path=url.path, query=f"token={forged}", host=url.netloc)
    assert tampered.status == 400  # a well-signed token the console never issued
    assert follow(location).status == 302  # the real one still works, once


def test_it_hands_off_only_to_members_who_may_use_pods(parked, team, charlie, pod_host):
    outsider = Client()
    outsider.force_login(charlie)
    assert outsider.get(f"/proxy-auth/{parked.public_id}-8080/").status_code == 404
    billing = make_user("billing@example.com")
    Membership.objects.create(user=billing, team=team, role="billing")
    member = Client()
    member.force_login(billing)
    assert member.get(f"/proxy-auth/{parked.public_id}-8080/").status_code == 404
    assert not AuditEvent.objects.filter(action="pod.proxy_signed_in").exists()


OFF_HOST = [
    "/\\evil.example/",
    "/\\/evil.example/",
    "//evil.example/",
    "///evil.example/",
    "http://evil.example/",
    "https:evil.example",
    "javascript:alert(1)",
    "/\t/evil.example/",
    "/\n/evil.example/",
    "/\r\n/evil.example/",
    "/\x00/evil.example/",
    " //evil.example/",
    "\\\\evil.example",
    "evil.example",
    "/ü",
]


@pytest.mark.parametrize("next_path", OFF_HOST)
def test_it_never_redirects_off_the_pods_host(next_path, parked, alice, pod_host):
    reply = follow(hand_off(alice, parked, next_path))
    assert (reply.status, reply.header("location")) == (302, "/")


def test_it_keeps_a_path_with_its_query_and_encoded_characters(parked, alice, pod_host):
    path = "/lab/tree/a%20b%2F..%5Cc?token=1&next=%2F%2Fx"
    assert follow(hand_off(alice, parked, path)).header("location") == path


# Cookies ---------------------------------------------------------------------------------------


def test_it_makes_a_pods_cookies_host_only_and_keeps_the_proxy_cookie_its_own(pod, alice, pod_host):
    cookie = signed_in_cookie(alice, pod)
    reply = call(
        method="GET",
        path="/set-cookies",
        query=f"domain={DOMAIN}",
        host=pod_host(pod),
        headers=[(b"cookie", cookie)],
    )
    assert reply.status == 200
    cookies = set_cookies(reply)
    assert set(cookies) == {"pod_plain", "pod_domain", "pod_upper", "sessionid", "csrftoken"}
    for line in cookies.values():
        attributes = [a.strip().lower() for a in line.split(";")[1:]]
        assert not [a for a in attributes if a.startswith("domain")], line
    assert cookies["pod_domain"] == "pod_domain=1; Path=/; HttpOnly"
    assert reply.header("clear-site-data") is None
    # The proxy's own cookie still signs alice in.
    again = call(method="GET", path="/x", host=pod_host(pod), headers=[(b"cookie", cookie)])
    assert again.status == 200


def test_it_sends_the_pod_its_cookies_but_never_the_proxys(pod, alice, pod_host):
    cookie = signed_in_cookie(alice, pod)
    reply = call(
        method="GET",
        path="/echo",
        host=pod_host(pod),
        headers=[(b"cookie", cookie + b"; pod_plain=1; __Host-console_proxy=x")],
    )
    assert json.loads(reply.body)["cookie"] == "pod_plain=1"


def test_a_cookie_planted_by_a_sibling_pod_does_not_hide_the_real_one(pod, alice, pod_host):
    cookie = signed_in_cookie(alice, pod)
    planted = b"console_proxy=planted-by-a-sibling; " + cookie
    reply = call(method="GET", path="/x", host=pod_host(pod), headers=[(b"cookie", planted)])
    assert reply.status == 200


def test_it_drops_every_cookie_and_defuses_every_page_on_the_path_form(pod, alice, pod_host):
    console_cookies = [(b"cookie", session_cookie(alice) + b"; csrftoken=abc")]
    path = f"/proxy/{pod.public_id}-8080"
    cookies = call(method="GET", path=path + "/set-cookies", headers=console_cookies)
    assert cookies.status == 200
    assert cookies.all("set-cookie") == []
    assert cookies.header("clear-site-data") is None
    assert cookies.header("strict-transport-security") is None
    page = call(method="GET", path=path + "/", headers=console_cookies)
    assert page.status == 200 and b"hostile pod" in page.body
    assert page.all("content-security-policy") == [proxy.SANDBOX]
    assert "allow-same-origin" not in proxy.SANDBOX.split()
    assert page.header("x-content-type-options") == "nosniff"
    echo = call(method="GET", path=path + "/echo", headers=console_cookies)
    assert json.loads(echo.body)["cookie"] == ""  # the console's session never reaches it


def test_the_consoles_cookies_are_host_only(alice, team, settings):
    EmailAddress.objects.create(user=alice, email=alice.email, primary=True, verified=True)
    client = Client()
    reply = client.post(
        "/accounts/login/", {"login": alice.email, "password": "correct-horse-battery"}
    )
    assert reply.status_code == 302
    page = client.get(f"/t/{team.slug}/settings/api-keys/")
    assert page.status_code == 200
    jar = SimpleCookie()
    for response in (reply, page):
        for morsel in response.cookies.values():
            jar[morsel.key] = morsel
    assert {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME} <= set(jar)
    for morsel in jar.values():
        assert morsel["domain"] == "", morsel.OutputString()
    assert jar[settings.CSRF_COOKIE_NAME]["httponly"] is True
    assert not ApiKey.objects.exists()


def test_the_proxys_pages_run_no_script_and_style_only_from_the_console(pod_host, team):
    reply = call(method="GET", path="/", host=f"nosuchpod00000-8080.{DOMAIN}")
    assert reply.status == 404
    policy = reply.header("content-security-policy")
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert b'href="http://console.test/static/' in reply.body
