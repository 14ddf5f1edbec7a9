"""{% load connect_tags %}{% pod_connect pod as connect %}: the pod's Connect menu data."""

from django import template

from pods.connect.links import Connect, connect_for
from pods.models import Pod

register = template.Library()


@register.simple_tag
def pod_connect(pod: Pod) -> Connect:
    return connect_for(pod)
