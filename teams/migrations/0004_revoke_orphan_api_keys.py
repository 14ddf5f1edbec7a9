"""Existing pod keys are marked as the pod's, and keys of people who already left their team
are revoked (before this, re-adding such a person brought their old keys back to life). Apart
from 0003 because PostgreSQL cannot build 0003's index in a transaction that deleted rows
other tables point at."""

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
    dependencies = [("teams", "0003_pod_api_keys")]

    operations = [
        migrations.RunPython(mark_pod_keys_and_revoke_orphans, migrations.RunPython.noop),
    ]
