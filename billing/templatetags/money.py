"""{% load money %}: the one way templates show money, never through float.

{{ amount|usd }}        $1,234.56: balances, top-ups, anything a person enters or pays
{{ rate|usd:4 }}        up to 4 decimals for per-hour prices: $0.79, $0.0167
{{ amount|usd_visible }} 4 decimals, more for a tiny non-zero amount: never "$0.0000"
{{ value|usd_detail }}  an audit-event detail: ledger-precision amounts ("10.0000000000", as
                        services record them) as money, anything else unchanged
"""

import re

from django import template

from billing.money import DECIMAL_PLACES, format_usd, to_money

register = template.Library()

# How str() writes a money_field() value: exactly the ledger's number of decimal places.
LEDGER_AMOUNT = re.compile(rf"-?\d+\.\d{{{DECIMAL_PLACES}}}")


@register.filter
def usd(amount, places: int = 2) -> str:
    return format_usd(amount, int(places))


@register.filter
def usd_detail(value):
    if isinstance(value, str) and LEDGER_AMOUNT.fullmatch(value):
        return format_usd(value, 4)
    return value


@register.filter
def usd_visible(amount, places: int = 4) -> str:
    """At least `places` decimals, and as many more as a non-zero amount needs not to read
    as $0.0000 (a small volume's hour is a fraction of a cent)."""
    value = to_money(amount)
    if value:
        places = min(max(int(places), -value.adjusted()), DECIMAL_PLACES)
    return format_usd(value, places)
