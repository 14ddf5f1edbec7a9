from allauth.account.adapter import DefaultAccountAdapter

from teams.services import create_personal_team
from teams.signup import run_after_signup


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            team = create_personal_team(user=user)
            run_after_signup(request=request, user=user, team=team)
        return user
