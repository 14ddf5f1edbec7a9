"""Dashboard cards. Each app that has something to show adds a function here that takes the
request (with request.team and request.membership set) and returns a card dict or None:
{"title", "value", "detail", "url", "icon"}."""

from collections.abc import Callable

from billing.dashboard import balance_card

CARD_PROVIDERS: list[Callable] = [balance_card]


def collect_cards(request) -> list[dict]:
    cards = []
    for provider in CARD_PROVIDERS:
        card = provider(request)
        if card:
            cards.append(card)
    return cards
