from django.apps import AppConfig


class ReferralsConfig(AppConfig):
    name = "referrals"
    verbose_name = "Referral programs"

    def ready(self) -> None:
        from referrals.services import attribute_signup_from_request
        from teams.signup import register_after_signup

        # Teams creates accounts without knowing about referrals; it calls this hook.
        register_after_signup(attribute_signup_from_request)
