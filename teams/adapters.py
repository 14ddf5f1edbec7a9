from allauth.account.adapter import DefaultAccountAdapter

from teams.services import create_personal_team


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            create_personal_team(user=user)
        return user
