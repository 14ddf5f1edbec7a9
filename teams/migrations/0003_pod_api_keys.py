"""Pod keys say which pod they belong to (0004 fills it in for existing pod keys)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("teams", "0002_public_ids")]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="pod_public_id",
            field=models.CharField(blank=True, db_index=True, max_length=14),
        ),
    ]
