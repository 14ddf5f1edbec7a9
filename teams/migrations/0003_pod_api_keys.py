"""Pod keys say which pod they belong to; keys of people who already left their team are
revoked (before this, re-adding such a person brought their old keys back to life)."""

import re

from django.db import migrations, models

OLD_POD_KEY_NAME = re.compile(r"^Pod ([a-z0-9]{1,14}) \(automatic\)$")


def mark_pod_keys_and_revoke_orphans(apps, schema_editor):
    api_key = apps.get_model("teams", "ApiKey")
    membership = apps.get_model("teams", "Membership")
    for key in api_key.objects.filter(created_by=None, pod_public_id=""):
        match = OLD_POD_KEY_NAME.match(key.name)
        if match:
            key.pod_public_id = match.group(1)
            key.save(update_fields=["pod_public_id"])
    members = membership.objects.filter(
        team_id=models.OuterRef("team_id"), user_id=models.OuterRef("created_by_id")
    )
    orphans = api_key.objects.filter(pod_public_id="").exclude(models.Exists(members))
    orphans.delete()


class Migration(migrations.Migration):
    dependencies = [("teams", "0002_public_ids")]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="pod_public_id",
            field=models.CharField(blank=True, db_index=True, max_length=14),
        ),
        migrations.RunPython(mark_pod_keys_and_revoke_orphans, migrations.RunPython.noop),
    ]
