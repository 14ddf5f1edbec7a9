"""The REST API of a team's money: its balance and burn rate, and its ledger. Billing roles
only (Billing and Admin): what the console's billing page shows them."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from api.viewsets import TeamScopedViewSet
from billing.models import LedgerEntry
from billing.money import DECIMAL_PLACES, MAX_DIGITS
from billing.services import get_account
from pods.services import team_burn_rate

# The ledger's own precision: an API answer never rounds what the console stores.
MONEY = {"max_digits": MAX_DIGITS, "decimal_places": DECIMAL_PLACES}


class BalanceSerializer(serializers.Serializer):
    balance = serializers.DecimalField(**MONEY)
    burn_rate_per_hour = serializers.DecimalField(**MONEY)
    runway_hours = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)


class LedgerEntrySerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)

    class Meta:
        model = LedgerEntry
        fields = ["id", "kind", "amount", "balance_after", "description", "created_at"]


class BillingViewSet(TeamScopedViewSet):
    queryset = LedgerEntry.objects.all()
    serializer_class = LedgerEntrySerializer
    capabilities = {"balance": "billing", "ledger": "billing"}

    @extend_schema(responses=BalanceSerializer)
    @action(detail=False, methods=["get"], pagination_class=None)
    def balance(self, request: Request) -> Response:
        balance = get_account(self.team).balance
        burn = team_burn_rate(self.team)
        runway = round(balance / burn, 2) if burn > 0 and balance > 0 else None
        body = {"balance": balance, "burn_rate_per_hour": burn, "runway_hours": runway}
        return Response(BalanceSerializer(body).data)

    @extend_schema(responses=LedgerEntrySerializer(many=True))
    @action(detail=False, methods=["get"])
    def ledger(self, request: Request) -> Response:
        """The team's ledger, newest first."""
        page = self.paginate_queryset(self.get_queryset().order_by("-created_at", "-id"))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
