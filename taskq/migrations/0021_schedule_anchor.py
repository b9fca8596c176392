"""taskq's own column on schedules: the anchor every run is counted from.

Nullable, so Django-Q2's rows need no rewrite: a schedule without an anchor takes its
``next_run`` as the anchor when it is first fired or saved.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_q", "0020_taskq_engine")]

    operations = [
        migrations.AddField(
            model_name="schedule",
            name="anchor",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
