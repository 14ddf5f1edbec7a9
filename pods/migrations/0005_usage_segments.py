"""The open usage segment of each pod and network volume (pods.metering): the rates it was
opened with. Empty after this migration: the first tick opens every segment at its
resource's mark (billing/migrations/0006_usage_rollup.py, the cut-over)."""

from django.db import migrations, models


def money():
    return models.DecimalField(blank=True, decimal_places=10, max_digits=20, null=True)


class Migration(migrations.Migration):
    dependencies = [
        ("pods", "0004_template_runtimes"),
    ]

    operations = [
        migrations.AddField(model_name="networkvolume", name="meter_storage", field=money()),
        migrations.AddField(model_name="pod", name="meter_compute", field=money()),
        migrations.AddField(model_name="pod", name="meter_storage_running", field=money()),
        migrations.AddField(model_name="pod", name="meter_storage_stopped", field=money()),
        migrations.AddField(
            model_name="pod",
            name="meter_running_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
