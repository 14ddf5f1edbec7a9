from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "teams"
    verbose_name = "Accounts and teams"

    def ready(self) -> None:
        from teams import account_audit

        account_audit.connect()
