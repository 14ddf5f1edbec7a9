from decimal import Decimal

import pytest
from django.template import Context, Template

from billing import money


def test_it_adds_sixty_minutes_at_079_per_hour_to_exactly_079():
    total = sum(money.minute_charge("0.79", minute) for minute in range(60))
    assert total == Decimal("0.79")


@pytest.mark.parametrize("rate", ["0.79", "0.01", "3.49", "1234.5678", "0.0000000007", "2.99"])
def test_it_makes_any_sixty_consecutive_minutes_sum_to_the_rate(rate):
    for start in (0, 17, 59):
        minutes = range(start, start + 60)
        assert sum(money.minute_charge(rate, m) for m in minutes) == Decimal(rate)


def test_it_splits_a_total_into_shares_that_add_up():
    shares = [money.period_share("10", i, 3) for i in range(3)]
    assert sum(shares) == Decimal("10")
    assert max(shares) - min(shares) <= money.QUANTUM


def test_it_refuses_float():
    with pytest.raises(TypeError):
        money.to_money(0.79)


def test_it_refuses_garbage():
    for value in ("abc", "NaN", "Infinity"):
        with pytest.raises(ValueError):
            money.to_money(value)


def test_it_converts_to_and_from_cents_exactly():
    assert money.to_cents(Decimal("25")) == 2500
    assert money.to_cents("0.79") == 79
    assert money.from_cents(2500) == Decimal("25")
    with pytest.raises(ValueError):
        money.to_cents("0.015")
    with pytest.raises(TypeError):
        money.from_cents(25.0)


def test_it_formats_dollars_for_people():
    assert money.format_usd(Decimal("1234.5")) == "$1,234.50"
    assert money.format_usd(Decimal("-0.79")) == "-$0.79"
    assert money.format_usd(Decimal("0.0131666667"), 4) == "$0.0132"
    assert money.format_usd(Decimal("0.005")) == "$0.01"
    assert money.format_usd(None) == ""


def test_it_renders_the_usd_filter_without_float():
    template = Template("{% load money %}{{ a|usd }} {{ b|usd:4 }}")
    rendered = template.render(Context({"a": Decimal("25"), "b": Decimal("0.0131666667")}))
    assert rendered == "$25.00 $0.0132"


def test_it_writes_decimal_strings_for_json():
    assert money.as_string(Decimal("25.0000000000")) == "25"
    assert money.as_string(Decimal("100")) == "100"
    assert money.as_string(Decimal("0.0131666667")) == "0.0131666667"
    assert money.as_string(Decimal("0E-10")) == "0"


def test_it_rounds_up_to_cents_when_asking_for_money():
    assert money.ceil_cents(Decimal("0.0031")) == Decimal("0.01")
    assert money.round_cents(Decimal("1.005")) == Decimal("1.01")
