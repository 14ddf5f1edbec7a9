from django.apps import AppConfig


class PodsConfig(AppConfig):
    name = "pods"

    def ready(self) -> None:
        from billing.burn import register_burn_rate_provider
        from console.dashboard import CARD_PROVIDERS
        from pods.connect import checks  # noqa: F401 (registers the deploy checks)
        from pods.dashboard import pods_card
        from pods.services import team_burn_rate

        # Billing asks "what does this team spend per hour?" without knowing about pods.
        register_burn_rate_provider(team_burn_rate)
        if pods_card not in CARD_PROVIDERS:
            CARD_PROVIDERS.append(pods_card)
