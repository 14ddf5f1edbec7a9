"""{% load pods_tags %}: status colours, durations and sizes for the pods pages."""

from django import template

register = template.Library()

STATUS_CLASSES = {
    "created": "secondary",
    "starting": "info",
    "running": "success",
    "stopping": "warning",
    "exited": "secondary",
    "failed": "danger",
    "preempted": "warning",
    "terminated": "dark",
}


@register.filter
def status_class(status: str) -> str:
    return STATUS_CLASSES.get(status, "secondary")


@register.filter
def duration(seconds: int) -> str:
    """3725 -> "1h 2m"; 45 -> "45s"."""
    seconds = int(seconds or 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


@register.filter
def filesize_mb(size: int | None) -> str:
    if size is None:
        return "—"
    mb = int(size) // (1024 * 1024)
    return f"{mb:,} MB" if mb else f"{int(size) // 1024:,} KB"
