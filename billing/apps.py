from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from billing import checks, payments, services  # noqa: F401 (checks registers itself)

        if payments.balance_changed not in services.BALANCE_HOOKS:
            services.BALANCE_HOOKS.append(payments.balance_changed)
