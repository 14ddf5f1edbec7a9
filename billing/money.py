"""Money, defined once.

Every amount in the console is a `Decimal` with DECIMAL_PLACES places, stored in a
`money_field()`. Float never touches money: `to_money` refuses it, templates use the `usd`
filter, and JSON carries decimal strings. Cents exist only at the Stripe boundary
(`to_cents` / `from_cents`).

No finite number of decimal places makes $0.79/60 exact (60 has the factor 3), so per-period
charges are *shares* rather than rounded quotients: `period_share(total, i, parts)` is the
difference of two rounded cumulative amounts, so any `parts` consecutive shares add up to
exactly `total` (60 minutes at $0.79/h cost exactly $0.79).
"""

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation

from django.db import models

MAX_DIGITS = 20
DECIMAL_PLACES = 10
QUANTUM = Decimal(1).scaleb(-DECIMAL_PLACES)
CENT = Decimal("0.01")
ZERO = Decimal(0).quantize(QUANTUM)

Amount = Decimal | int | str


def money_field(**kwargs) -> models.DecimalField:
    """The one column type for amounts (balances, prices, rates, ledger rows)."""
    kwargs.setdefault("max_digits", MAX_DIGITS)
    kwargs.setdefault("decimal_places", DECIMAL_PLACES)
    return models.DecimalField(**kwargs)


def to_money(value: Amount) -> Decimal:
    """An exact Decimal at the ledger's precision. Floats are refused: they are already wrong."""
    if isinstance(value, float | bool):
        raise TypeError(f"Money must not be {type(value).__name__}: {value!r}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"Not an amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"Not an amount: {value!r}")
    return amount.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def period_share(total: Amount, index: int, parts: int) -> Decimal:
    """Share number `index` (any integer; taken modulo `parts`) of `total` split into `parts`.

    cumulative(k) = round(total * k / parts); share(i) = cumulative(i + 1) - cumulative(i).
    The shares of any `parts` consecutive indexes telescope to exactly `total`.
    """
    if parts <= 0:
        raise ValueError("parts must be positive")
    total = to_money(total)
    i = index % parts
    # Half up, as PostgreSQL's ROUND does for positives: metering computes the same shares in SQL.
    upper = (total * (i + 1) / parts).quantize(QUANTUM, rounding=ROUND_HALF_UP)
    lower = (total * i / parts).quantize(QUANTUM, rounding=ROUND_HALF_UP)
    return upper - lower


def minute_charge(hourly_rate: Amount, minute_of_hour: int) -> Decimal:
    """What one minute costs at an hourly rate: 60 consecutive minutes add up to the rate."""
    return period_share(hourly_rate, minute_of_hour, 60)


def to_cents(amount: Amount) -> int:
    """Whole cents for Stripe. Amounts we charge are whole cents; anything else is a bug."""
    amount = to_money(amount)
    cents = amount / CENT
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount} is not a whole number of cents")
    return int(cents)


def from_cents(cents: int) -> Decimal:
    if not isinstance(cents, int) or isinstance(cents, bool):
        raise TypeError(f"Cents must be an int, not {type(cents).__name__}")
    return to_money(Decimal(cents) * CENT)


def round_cents(amount: Amount) -> Decimal:
    """Round half up to cents, for display and for amounts the customer sees on a receipt."""
    return to_money(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def ceil_cents(amount: Amount) -> Decimal:
    """Round up to cents: "add at least $X" must really be enough."""
    return to_money(amount).quantize(CENT, rounding=ROUND_CEILING)


def for_display(amount: Amount, places: int = 2) -> Decimal:
    """Rounded half up to `places`, then trailing zeros past the cents dropped: `places` > 2
    (per-hour or per-minute rates) means *up to* that many decimals, 0.79 or 0.0167, never
    0.7900 (let alone the ledger's ten)."""
    rounded = to_money(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    while places > 2 and rounded == rounded.quantize(Decimal(1).scaleb(1 - places)):
        places -= 1
        rounded = rounded.quantize(Decimal(1).scaleb(-places))
    return rounded


def format_usd(amount: Amount | None, places: int = 2) -> str:
    """'$1,234.56', '-$0.79', '$0.0167' (see for_display)."""
    if amount is None or amount == "":
        return ""
    rounded = for_display(amount, places)
    sign = "-" if rounded < 0 else ""
    return f"{sign}${abs(rounded):,f}"


def as_string(amount: Amount) -> str:
    """A decimal string for JSON we own (charts, APIs): never a float, never exponent form."""
    value = to_money(amount)
    return format(value.normalize(), "f") if value else "0"
