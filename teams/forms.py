from django import forms
from django.db.models import QuerySet

from teams.models import ApiKey, Role

ROLE_HELP = {
    Role.BASIC: "Use the account: see pods and connect to them.",
    Role.BILLING: "Billing only: top-ups, payment methods, invoices.",
    Role.DEV: "Create, start, stop and terminate pods.",
    Role.ADMIN: "Everything, including members, settings and API keys.",
}


class TeamNameField(forms.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 100)
        kwargs.setdefault("min_length", 2)
        super().__init__(**kwargs)

    def clean(self, value):
        return " ".join(super().clean(value).split())


class ConvertTeamForm(forms.Form):
    name = TeamNameField(label="Team name", help_text="Shown to everyone you invite.")
    confirm = forms.BooleanField(
        label="I understand that this cannot be undone: the account becomes a team account.",
        error_messages={"required": "Tick the box to confirm the conversion."},
    )


class TeamSettingsForm(forms.Form):
    name = TeamNameField(label="Name")


class InviteForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, initial=Role.BASIC)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What uses this key, e.g. “training cluster” or “CI”."
    )
    permission = forms.ChoiceField(
        choices=ApiKey.Permission.choices,
        initial=ApiKey.Permission.READ_WRITE,
        widget=forms.RadioSelect,
        help_text="Read-only keys are refused on every request that changes something.",
    )


class AuditFilterForm(forms.Form):
    """Filters for a team's audit log. The select boxes offer only values the log contains."""

    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    user = forms.ChoiceField(required=False)
    resource_type = forms.ChoiceField(required=False)
    resource_id = forms.CharField(required=False, max_length=64)
    action = forms.ChoiceField(required=False)

    def __init__(self, data, *, events: QuerySet, **kwargs):
        super().__init__(data, **kwargs)
        for name, column in (
            ("user", "actor_label"),
            ("resource_type", "resource_type"),
            ("action", "action"),
        ):
            values = events.order_by(column).values_list(column, flat=True).distinct()
            self.fields[name].choices = [("", "Any")] + [(v, v) for v in values]

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def filter(self, events: QuerySet) -> QuerySet:
        if not self.is_valid():
            return events.none()
        data = self.cleaned_data
        lookups = {
            "created_at__date__gte": data["date_from"],
            "created_at__date__lte": data["date_to"],
            "actor_label": data["user"],
            "resource_type": data["resource_type"],
            "resource_id": data["resource_id"].strip(),
            "action": data["action"],
        }
        return events.filter(**{key: value for key, value in lookups.items() if value})

    @property
    def is_filtered(self) -> bool:
        return self.is_valid() and any(self.cleaned_data.values())
