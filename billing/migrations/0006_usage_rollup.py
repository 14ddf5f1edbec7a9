"""Usage rolls up per resource and hour (billing.usage). A cut-over, not a rewrite: the
per-minute rows already posted stay as they are (the ledger is append-only and commissions
point at them), every balance is unchanged, and the first tick after this migration charges
each resource from its own mark on (the team's watermark starts empty)."""

from decimal import Decimal

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_low_funds_and_write_offs"),
    ]

    operations = [
        migrations.AddField(
            model_name="billingaccount",
            name="usage_metered_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="billingaccount",
            name="usage_accrued",
            field=models.DecimalField(decimal_places=10, default=Decimal("0E-10"), max_digits=20),
        ),
        migrations.AddField(
            model_name="ledgerentry",
            name="period_start",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="ledgerentry",
            name="period_end",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="ledgerentry",
            name="minutes",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
