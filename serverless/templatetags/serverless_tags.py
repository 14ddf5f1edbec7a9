"""{% load serverless_tags %}: durations and ages as the serverless pages show them."""

from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def ms(value: int | None) -> str:
    """A duration in milliseconds, in the unit a person reads it in: 850 -> "850 ms",
    12345 -> "12.3 s", 125000 -> "2m 5s"; None -> "" (not measured yet)."""
    if value is None:
        return ""
    value = int(value)
    if value < 1000:
        return f"{value} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    minutes, seconds = divmod(round(value / 1000), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {seconds}s"


@register.filter
def ago(moment: datetime | None) -> str:
    """How long ago, down to the second for the last minute ("4 s ago", "3 min ago")."""
    if moment is None:
        return "never"
    seconds = max(0, int((timezone.now() - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"
