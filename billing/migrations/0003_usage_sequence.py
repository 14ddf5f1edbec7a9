from django.db import migrations


def create_sequence(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE SEQUENCE IF NOT EXISTS billing_ledgerentry_usage_seq")


def drop_sequence(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP SEQUENCE IF EXISTS billing_ledgerentry_usage_seq")


class Migration(migrations.Migration):
    """Public ids of set-based usage rows come from this counter (billing/usage.py)."""

    dependencies = [("billing", "0002_payment_card")]

    operations = [migrations.RunPython(create_sequence, drop_sequence)]
