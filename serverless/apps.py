from django.apps import AppConfig


class ServerlessConfig(AppConfig):
    name = "serverless"

    def ready(self) -> None:
        from billing.usage import register_accrual_provider
        from pods import funds
        from pods import metering as pods_metering
        from serverless import metering

        # Workers are metered per second on the pods' minute tick (one beat entry), their
        # open accrual is proven by check_ledger, their prices count in the team's burn rate
        # (low funds, runway, can_afford) and low funds stops them with the team's pods.
        if metering.meter_workers not in pods_metering.TICK_HOOKS:
            pods_metering.TICK_HOOKS.append(metering.meter_workers)
        register_accrual_provider(metering.ACCRUALS)
        if metering.burn_sql not in pods_metering.BURN_SQL:
            pods_metering.BURN_SQL.append(metering.burn_sql)
        if metering.stop_team_workers not in funds.STOP_HOOKS:
            funds.STOP_HOOKS.append(metering.stop_team_workers)
