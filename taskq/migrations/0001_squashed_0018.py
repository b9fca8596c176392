"""Django-Q2's schema as it stands after its migrations 0001-0018, which this one replaces.

A database migrated by Django-Q2 already has these tables, so Django records this
migration as applied without running it; a new database gets exactly that schema.
Django-Q2's 0019 changed no SQL and keeps its own name (the next migration), so a
database left at 0018 by an older Django-Q2 migrates as well as one at 0019.
"""

import django.utils.timezone
from django.db import migrations, models

import taskq.fields
import taskq.models


class Migration(migrations.Migration):
    initial = True

    replaces = [
        ("django_q", "0001_initial"),
        ("django_q", "0002_auto_20150630_1624"),
        ("django_q", "0003_auto_20150708_1326"),
        ("django_q", "0004_auto_20150710_1043"),
        ("django_q", "0005_auto_20150718_1506"),
        ("django_q", "0006_auto_20150805_1817"),
        ("django_q", "0007_ormq"),
        ("django_q", "0008_auto_20160224_1026"),
        ("django_q", "0009_auto_20171009_0915"),
        ("django_q", "0010_auto_20200610_0856"),
        ("django_q", "0011_auto_20200628_1055"),
        ("django_q", "0012_auto_20200702_1608"),
        ("django_q", "0013_task_attempt_count"),
        ("django_q", "0014_schedule_cluster"),
        ("django_q", "0015_alter_schedule_schedule_type"),
        ("django_q", "0016_schedule_intended_date_kwarg"),
        ("django_q", "0017_task_cluster_alter"),
        ("django_q", "0018_task_success_index"),
    ]

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Schedule",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(blank=True, max_length=100, null=True)),
                ("func", models.CharField(help_text="e.g. module.tasks.function", max_length=256)),
                (
                    "hook",
                    models.CharField(
                        blank=True,
                        help_text="e.g. module.tasks.result_function",
                        max_length=256,
                        null=True,
                    ),
                ),
                (
                    "args",
                    models.TextField(
                        blank=True,
                        help_text="e.g. 1, 2, 'John'",
                        null=True,
                        validators=[taskq.models.validate_args],
                    ),
                ),
                (
                    "kwargs",
                    models.TextField(
                        blank=True,
                        help_text="e.g. x=1, y=2, name='John'",
                        null=True,
                        validators=[taskq.models.validate_kwargs],
                    ),
                ),
                (
                    "schedule_type",
                    models.CharField(
                        choices=[
                            ("O", "Once"),
                            ("I", "Minutes"),
                            ("H", "Hourly"),
                            ("D", "Daily"),
                            ("W", "Weekly"),
                            ("BW", "Biweekly"),
                            ("M", "Monthly"),
                            ("BM", "Bimonthly"),
                            ("Q", "Quarterly"),
                            ("Y", "Yearly"),
                            ("C", "Cron"),
                        ],
                        default="O",
                        max_length=2,
                        verbose_name="Schedule Type",
                    ),
                ),
                (
                    "minutes",
                    models.PositiveSmallIntegerField(
                        blank=True, help_text="Number of minutes for the Minutes type", null=True
                    ),
                ),
                ("repeats", models.IntegerField(default=-1, help_text="n = n times, -1 = forever")),
                (
                    "next_run",
                    models.DateTimeField(
                        default=django.utils.timezone.now, null=True, verbose_name="Next Run"
                    ),
                ),
                (
                    "cron",
                    models.CharField(
                        blank=True,
                        help_text="Cron expression",
                        max_length=100,
                        null=True,
                        validators=[taskq.models.validate_cron],
                    ),
                ),
                ("task", models.CharField(editable=False, max_length=100, null=True)),
                ("cluster", models.CharField(blank=True, default=None, max_length=100, null=True)),
                (
                    "intended_date_kwarg",
                    models.CharField(
                        blank=True,
                        help_text="Name of kwarg to pass intended schedule date",
                        max_length=100,
                        null=True,
                        validators=[taskq.models.validate_kwarg],
                    ),
                ),
            ],
            options={
                "verbose_name": "Scheduled task",
                "verbose_name_plural": "Scheduled tasks",
                "ordering": ["next_run"],
            },
        ),
        migrations.CreateModel(
            name="OrmQ",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=100)),
                ("payload", models.TextField()),
                ("lock", models.DateTimeField(null=True)),
            ],
            options={
                "verbose_name": "Queued task",
                "verbose_name_plural": "Queued tasks",
            },
        ),
        migrations.CreateModel(
            name="Task",
            fields=[
                (
                    "id",
                    models.CharField(
                        editable=False, max_length=32, primary_key=True, serialize=False
                    ),
                ),
                ("name", models.CharField(editable=False, max_length=100)),
                ("func", models.CharField(max_length=256)),
                ("hook", models.CharField(max_length=256, null=True)),
                ("args", taskq.fields.PickledObjectField(editable=False, null=True)),
                ("kwargs", taskq.fields.PickledObjectField(editable=False, null=True)),
                ("result", taskq.fields.PickledObjectField(editable=False, null=True)),
                ("group", models.CharField(editable=False, max_length=100, null=True)),
                ("cluster", models.CharField(blank=True, default=None, max_length=100, null=True)),
                ("started", models.DateTimeField(editable=False)),
                ("stopped", models.DateTimeField(editable=False)),
                ("success", models.BooleanField(default=True, editable=False)),
                ("attempt_count", models.IntegerField(default=0)),
            ],
            options={
                "verbose_name": "Task",
                "verbose_name_plural": "Tasks",
                "ordering": ["-stopped"],
                "indexes": [
                    models.Index(
                        condition=models.Q(("success", True)),
                        fields=["group", "name", "func"],
                        name="success_index",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="Failure",
            fields=[],
            options={
                "verbose_name": "Failed task",
                "verbose_name_plural": "Failed tasks",
                "ordering": ["-stopped"],
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("django_q.task",),
        ),
        migrations.CreateModel(
            name="Success",
            fields=[],
            options={
                "verbose_name": "Successful task",
                "verbose_name_plural": "Successful tasks",
                "ordering": ["-stopped"],
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("django_q.task",),
        ),
    ]
