from django import forms

from teams.models import Team

PERSONAL = ""


class PayoutTeamForm(forms.Form):
    """Where the user's future commissions go: any team they belong to."""

    team = forms.ChoiceField(required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.teams = {team.slug: team for team in Team.objects.for_user(user).order_by("name")}
        self.fields["team"].choices = [(PERSONAL, "My personal account")] + [
            (slug, team.name) for slug, team in self.teams.items() if not team.is_personal
        ]

    def chosen_team(self) -> Team | None:
        return self.teams.get(self.cleaned_data["team"])
