"""Shared fixtures for browser tests: headless system Chromium driven by pytest-playwright against
pytest-django's in-process live_server.

Run them in their own pytest process (see ENVIRONMENT.md):
    DJANGO_ALLOW_ASYNC_UNSAFE=true .venv/bin/python -m pytest -m e2e tests/e2e

Every test under tests/e2e/ is marked `e2e` automatically and needs
`@pytest.mark.django_db(transaction=True)` so the live server's thread sees its data.

    def test_it_deploys(live_url, new_page, shot, login_page, verified_user):
        user = verified_user("dana@example.com")
        page = login_page(user)            # a fresh browser context, already signed in
        page.goto(live_url("/"))           # relative URLs work too: page.goto("/")
        shot(page, "dashboard")            # -> $ARTIFACTS_DIR/<test name>/01-dashboard.png

A JS console error on any page from new_page/login_page fails the test (no_console_errors).
"""

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.core.cache import cache
from django.test import Client

from tests.conftest import make_user

# Sync Playwright runs an event loop in this thread; Django's ORM calls from the test body are
# still synchronous and safe. Set before Django checks it, so a bare `pytest -m e2e` works too.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

E2E_DIR = Path(__file__).parent


@pytest.fixture
def tmp_path():
    """A temporary directory outside pytest's own, which pytest keeps private (0700): the
    consoles these tests start keep DATA_DIR here, and pods' host uids must pass through every
    parent of their directories."""
    path = Path(tempfile.mkdtemp(prefix="e2e-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "console_errors_expected: the test provokes JS console errors on purpose"
    )


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """allauth's rate limits (sign-ins, confirmation mails) live in the cache, which outlives a
    test; start every browser test with none used."""
    cache.clear()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright's launch options, pointed at the system Chromium."""
    executable = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    return {**browser_type_launch_args, "executable_path": executable, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url(live_server) -> str:
    """Makes `page.goto("/path")` resolve against the live server."""
    return live_server.url


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1366, "height": 900}}


@pytest.fixture
def live_url(live_server) -> Callable[[str], str]:
    """live_url("/accounts/signup/") -> "http://localhost:PORT/accounts/signup/"."""
    return lambda path="/": live_server.url + path


@pytest.fixture
def console_errors() -> list[str]:
    """Every JS error on the test's pages ("<url>: <message>"): console.error() calls (failed
    loads included) and uncaught exceptions. Pages from new_page and login_page are watched;
    watch_console(page, console_errors) watches any other."""
    return []


def watch_console(page, errors: list[str]):
    page.on("console", lambda m: m.type == "error" and errors.append(f"{page.url}: {m.text}"))
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
    return page


@pytest.fixture(autouse=True)
def no_console_errors(request, console_errors: list[str]):
    """Fails any browser test whose pages logged a JS error; a test that provokes one on purpose
    is marked `@pytest.mark.console_errors_expected`."""
    yield
    if request.node.get_closest_marker("console_errors_expected") is None:
        assert console_errors == [], "JS console errors:\n" + "\n".join(console_errors)


@pytest.fixture
def new_page(new_context, console_errors: list[str]) -> Callable:
    """A page in a fresh browser context (its own cookies): one per person in the test."""

    def make(**context_args):
        page = new_context(**context_args).new_page()
        page.set_default_timeout(15_000)
        return watch_console(page, console_errors)

    return make


@pytest.fixture
def artifacts_dir(request) -> Path:
    root = Path(os.environ.get("ARTIFACTS_DIR", settings.BASE_DIR / "test-artifacts"))
    # pytest-playwright parametrizes every test by browser: drop the "[chromium]" suffix.
    name = re.sub(r"\[?chromium\]?", "", request.node.name).strip("-[]") or request.node.name
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def shot(artifacts_dir: Path) -> Callable:
    """shot(page, "name") saves a numbered full-page screenshot and returns its path."""
    counter = iter(range(1, 1000))

    def take(page, name: str) -> Path:
        path = artifacts_dir / f"{next(counter):02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def mail_link() -> Callable[..., str]:
    """The first link in the newest e-mail (pytest-django's locmem outbox) matching `pattern`,
    optionally only mail sent to `to`."""

    def find(pattern: str = r"https?://\S+", to: str | None = None) -> str:
        for message in reversed(mail.outbox):
            if to and to not in message.to:
                continue
            match = re.search(pattern, message.body)
            if match:
                return match.group(0)
        sent = [(m.to, m.subject) for m in mail.outbox]
        raise AssertionError(f"No e-mail with a link matching {pattern!r}; outbox: {sent}")

    return find


@pytest.fixture
def verified_user(transactional_db) -> Callable:
    """verified_user(email) -> a user with a verified e-mail and a personal account. The
    password is tests.conftest.PASSWORD."""
    from allauth.account.models import EmailAddress

    def make(email: str):
        user = make_user(email)
        EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
        return user

    return make


@pytest.fixture
def login_page(new_page, live_server) -> Callable:
    """login_page(user) -> a page in a fresh context that is already signed in as `user`
    (the session cookie is made by Django's test client, no login form involved)."""

    def make(user, **context_args):
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        page = new_page(**context_args)
        page.context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": cookie.value,
                    "url": live_server.url,
                }
            ]
        )
        return page

    return make
