"""The one form widget for money: a number input that shows a Decimal at the precision people
enter it in (2 places for amounts, more for per-hour rates), never the ledger's ten."""

from decimal import Decimal

from django import forms

from billing.money import for_display


class MoneyInput(forms.NumberInput):
    def __init__(self, attrs: dict | None = None, *, places: int = 2) -> None:
        self.places = places
        step = str(Decimal(1).scaleb(-places))
        super().__init__({"step": step, "class": "form-control", **(attrs or {})})

    def format_value(self, value):
        # Bound data is what the person typed: give it back as typed.
        if isinstance(value, Decimal | int) and not isinstance(value, bool):
            return format(for_display(value, self.places), "f")
        return super().format_value(value)
