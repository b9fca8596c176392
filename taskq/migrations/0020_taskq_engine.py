"""taskq's own additions: delivery columns and the claim index on the queue, cluster heartbeats."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]

    operations = [
        migrations.AddField(
            model_name="ormq", name="priority", field=models.SmallIntegerField(default=0)
        ),
        migrations.AddField(
            model_name="ormq",
            name="owner",
            field=models.CharField(blank=True, max_length=32, null=True),
        ),
        migrations.AddField(
            model_name="ormq",
            name="token",
            field=models.CharField(blank=True, max_length=32, null=True),
        ),
        migrations.AddField(
            model_name="ormq", name="attempt", field=models.IntegerField(default=0)
        ),
        migrations.AddField(
            model_name="ormq", name="claimed", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.AddField(
            model_name="ormq",
            name="task_ident",
            field=models.CharField(blank=True, db_column="task_id", max_length=32, null=True),
        ),
        migrations.AddField(
            model_name="ormq",
            name="task_name",
            field=models.CharField(blank=True, db_column="name", max_length=100, null=True),
        ),
        migrations.AddField(
            model_name="ormq",
            name="task_func",
            field=models.CharField(blank=True, db_column="func", max_length=256, null=True),
        ),
        migrations.AddIndex(
            model_name="ormq",
            index=models.Index(
                models.F("key"),
                models.OrderBy(models.F("priority"), descending=True),
                models.F("id"),
                condition=models.Q(("owner__isnull", True)),
                name="taskq_ormq_claim",
            ),
        ),
        migrations.AddIndex(
            model_name="ormq",
            index=models.Index(
                condition=models.Q(("owner__isnull", False)),
                fields=["owner"],
                name="taskq_ormq_owner",
            ),
        ),
        migrations.CreateModel(
            name="Cluster",
            fields=[
                ("id", models.CharField(max_length=32, primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=100)),
                ("host", models.CharField(max_length=255)),
                ("pid", models.IntegerField()),
                ("state", models.CharField(max_length=20)),
                ("started", models.DateTimeField()),
                ("heartbeat", models.DateTimeField(db_index=True)),
                ("workers", models.JSONField(default=list)),
                ("held", models.IntegerField(default=0)),
                ("processed", models.IntegerField(default=0)),
                ("failed", models.IntegerField(default=0)),
                ("rejected", models.IntegerField(default=0)),
                ("rss", models.IntegerField(default=0)),
            ],
            options={
                "verbose_name": "Cluster",
                "verbose_name_plural": "Clusters",
                "db_table": "taskq_cluster",
                "ordering": ["name", "host", "pid"],
            },
        ),
    ]
