from django.apps import AppConfig


class PodsConfig(AppConfig):
    name = "pods"

    def ready(self) -> None:
        from billing.burn import register_burn_rate_provider
        from billing.usage import register_accrual_provider
        from console.dashboard import CARD_PROVIDERS
        from pods.connect import checks  # noqa: F401 (registers the deploy checks)
        from pods.dashboard import pods_card
        from pods.metering import ACCRUALS
        from pods.services import team_burn_rate

        # Billing asks "what does this team spend per hour?" without knowing about pods.
        register_burn_rate_provider(team_burn_rate)
        # check_ledger and the billing page read the open hour's usage the same way.
        register_accrual_provider(ACCRUALS)
        if pods_card not in CARD_PROVIDERS:
            CARD_PROVIDERS.append(pods_card)
