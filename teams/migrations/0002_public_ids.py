"""Public ids for memberships and invites, so their URLs never carry integer primary keys.
Added in three steps because existing rows each need their own unique value."""

from django.db import migrations, models

import teams.models


def fill_public_ids(apps, schema_editor):
    for name in ("Membership", "Invite"):
        model = apps.get_model("teams", name)
        for row in model.objects.filter(public_id=None).only("pk"):
            row.public_id = teams.models.new_public_id()
            row.save(update_fields=["public_id"])


class Migration(migrations.Migration):
    dependencies = [("teams", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="public_id",
            field=models.CharField(max_length=14, null=True),
        ),
        migrations.AddField(
            model_name="invite",
            name="public_id",
            field=models.CharField(max_length=14, null=True),
        ),
        migrations.RunPython(fill_public_ids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="membership",
            name="public_id",
            field=models.CharField(
                default=teams.models.new_public_id, max_length=14, unique=True
            ),
        ),
        migrations.AlterField(
            model_name="invite",
            name="public_id",
            field=models.CharField(
                default=teams.models.new_public_id, max_length=14, unique=True
            ),
        ),
    ]
