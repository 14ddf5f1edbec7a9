"""The team dashboard: cards, a getting-started checklist from real state, the pods that run now
and (for billing roles) what the team spent.

Cards: each app that has something to show adds a function to CARD_PROVIDERS that takes the
request (with request.team and request.membership set) and returns a card dict or None:
{"title", "value", "detail", "url", "icon"}."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.db.models import Exists, OuterRef
from django.urls import NoReverseMatch, reverse

from billing.dashboard import balance_card
from billing.models import BillingAccount, LedgerEntry
from billing.money import ZERO
from billing.reports import spend_by_day
from pods.models import Pod, SshKey
from teams.models import Invite, Membership, User

CARD_PROVIDERS: list[Callable] = [balance_card]
SPEND_WINDOWS = (7, 30)
CHART_HEIGHT = 60  # px of the tallest bar in the spend chart
BAR_PITCH = 10  # px from one day's bar to the next


def collect_cards(request) -> list[dict]:
    cards = []
    for provider in CARD_PROVIDERS:
        card = provider(request)
        if card:
            cards.append(card)
    return cards


@dataclass(frozen=True)
class Step:
    key: str
    capability: str
    icon: str
    title: str
    text: str
    url: str | None
    done: bool


def _url(name: str, *args) -> str | None:
    """A section that is not there has no URL: the step then says "coming"."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def _progress(team, user) -> dict[str, bool]:
    """Every step's state in one query: EXISTS subqueries on the user's row."""
    pending = Invite.objects.filter(team=team).pending()
    flags = {
        "verify_email": EmailAddress.objects.filter(user=OuterRef("pk"), verified=True),
        # Any paid credit ever (a top-up or a paid invoice), or money on the balance now.
        "paid": LedgerEntry.objects.filter(team=team, kind__in=LedgerEntry.PAID_KINDS),
        "balance": BillingAccount.objects.filter(team=team, balance__gt=0),
        "ssh_key": SshKey.objects.filter(user=OuterRef("pk")),
        "deploy": Pod.objects.for_team(team).user_pods(),
        "member": Membership.objects.filter(team=team).exclude(user=OuterRef("pk")),
        "invite": pending,
        "api_key": team.api_keys.filter(pod_public_id=""),
        "two_factor": Authenticator.objects.filter(
            user=OuterRef("pk"), type=Authenticator.Type.TOTP
        ),
    }
    row = (
        User.objects.filter(pk=user.pk)
        .annotate(**{name: Exists(query) for name, query in flags.items()})
        .values(*flags)
        .get()
    )
    paid, balance, member = row.pop("paid"), row.pop("balance"), row.pop("member")
    return {**row, "add_credit": paid or balance, "invite": row["invite"] or member}


def _step_specs(team) -> list[tuple[str, str, str, str, str, str | None]]:
    """(key, capability, icon, title, text, url) of every step, in the order to take them."""
    slug = team.slug
    invite_url = _url("convert_team", slug) if team.is_personal else _url("members", slug)
    return [
        ("verify_email", "member", "envelope-check", "Verify your e-mail",
         "We send receipts, low-funds warnings and invites there.", _url("account_email")),
        ("add_credit", "billing", "wallet2", "Add credit",
         "Compute is prepaid and billed by the minute; the first top-up is $10 or more.",
         _url("billing_top_up", slug)),
        ("ssh_key", "use", "terminal", "Add an SSH key",
         "Every pod you may connect to gets your public keys, for ssh and scp.",
         _url("ssh_keys", slug)),
        ("deploy", "deploy", "rocket-takeoff", "Deploy a pod",
         "Pick a GPU, a template and disk sizes; it starts in seconds.", _url("pod_deploy", slug)),
        ("invite", "admin", "person-plus", "Invite your team",
         "Convert your personal account into a team, then send invite links with roles."
         if team.is_personal else "Send invite links with a role: basic, billing, dev or admin.",
         invite_url),
        ("api_key", "admin", "key", "Create an API key",
         "For the REST API, the Python SDK and the CLI.", _url("api_keys", slug)),
        ("two_factor", "member", "shield-lock", "Turn on two-factor authentication",
         "Protect your login with an authenticator app and recovery codes.", _url("mfa_index")),
    ]  # fmt: skip


def checklist(membership, user) -> list[Step]:
    """The steps this member's role can take, each ticked from the database, never stored."""
    done = _progress(membership.team, user)
    return [
        Step(key, capability, icon, title, text, url, done[key])
        for key, capability, icon, title, text, url in _step_specs(membership.team)
        if membership.can(capability)
    ]


def next_step(steps: list[Step]) -> Step | None:
    return next((step for step in steps if not step.done and step.url), None)


@dataclass(frozen=True)
class PodRow:
    pod: Pod
    cost_per_hour: Decimal


def running_pods(team) -> list[PodRow]:
    """Pods that hold a machine now (and are billed as running), with their price per hour."""
    pods = (
        Pod.objects.for_team(team)
        .user_pods()
        .holding()
        .select_related("team", "gpu_type", "cpu_instance", "machine")
        .order_by("-created_at")
    )
    return [PodRow(pod, pod.price().total) for pod in pods]


@dataclass(frozen=True)
class SpendBar:
    day: date
    amount: Decimal
    height: int  # px, of CHART_HEIGHT
    y: int  # px from the top of the chart


def _bars(days: list[tuple[date, Decimal]]) -> list[SpendBar]:
    top = max((amount for _, amount in days), default=ZERO)
    bars = []
    for day, amount in days:
        # Decimal all the way to whole pixels; a day with any spend gets at least one.
        height = int(amount * CHART_HEIGHT / top) if top > 0 else 0
        height = max(height, 1) if amount > 0 else 0
        bars.append(SpendBar(day, amount, height, CHART_HEIGHT - height))
    return bars


def spend(team, window: int) -> dict:
    """Spend today and per day over the last `window` days, as bars of an SVG chart."""
    days = spend_by_day(team, window)
    return {
        "today": days[-1][1] if days else ZERO,
        "total": sum((amount for _, amount in days), ZERO),
        "window": window,
        "windows": SPEND_WINDOWS,
        "bars": _bars(days),
        "width": BAR_PITCH * len(days),
        "height": CHART_HEIGHT,
    }
