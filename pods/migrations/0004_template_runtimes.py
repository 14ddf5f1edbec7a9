from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("pods", "0003_connect"),
    ]

    operations = [
        migrations.AddField(
            model_name="podtemplate",
            name="runtimes",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text=(
                    'Runtimes this template runs on, e.g. ["process", "docker"]; empty: any. '
                    "The process runtime ignores the image, so it needs a start command that "
                    "serves the template's ports."
                ),
            ),
        ),
    ]
