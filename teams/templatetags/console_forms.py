"""Bootstrap 5 rendering for Django form fields, used by the console's and allauth's forms.

{% load console_forms %}
{% bs_field form.name %}           label, widget, help text and errors
{{ form.name|bs_widget }}          the widget alone, with Bootstrap classes
"""

from django import forms, template
from django.forms.boundfield import BoundField

register = template.Library()

CHECK_WIDGETS = (forms.CheckboxInput, forms.RadioSelect, forms.CheckboxSelectMultiple)


def widget_class(field: BoundField) -> str:
    widget = field.field.widget
    if isinstance(widget, CHECK_WIDGETS):
        css = "form-check-input"
    elif isinstance(widget, forms.Select):
        css = "form-select"
    else:
        css = "form-control"
    if field.errors:
        css += " is-invalid"
    return css


@register.filter
def bs_widget(field: BoundField, extra: str = "") -> str:
    widget = field.field.widget
    existing = widget.attrs.get("class", "")
    css = " ".join(part for part in (existing, widget_class(field), extra) if part)
    return field.as_widget(attrs={"class": css})


@register.filter
def is_checkbox(field: BoundField) -> bool:
    return isinstance(field.field.widget, forms.CheckboxInput)


@register.filter
def is_choice_list(field: BoundField) -> bool:
    return isinstance(field.field.widget, forms.RadioSelect | forms.CheckboxSelectMultiple)


@register.inclusion_tag("teams/_field.html")
def bs_field(field: BoundField, label: bool = True) -> dict:
    return {"field": field, "show_label": label}
