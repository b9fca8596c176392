"""``manage.py enqueue_examples``: queue one of each example task and print the task ids."""

from django.core.management.base import BaseCommand

SCHEDULE_NAME = "example: hourly word count"
TEXT = "The quick brown fox jumps over the lazy dog. The dog sleeps."


class Command(BaseCommand):
    help = "Queue one of each example task in shop.tasks and print their task ids."

    def handle(self, *args, **options):
        from taskq.models import Schedule
        from taskq.tasks import async_task, schedule

        queued = [
            ("add", async_task("shop.tasks.add", 2, 3, hook="shop.tasks.print_result")),
            ("slow", async_task("shop.tasks.slow", 1)),
            ("fail", async_task("shop.tasks.fail", group="examples")),
            ("count_words", async_task("shop.tasks.count_words", TEXT, group="examples")),
        ]
        for label, task_id in queued:
            self.stdout.write(f"{label:<12} {task_id}")

        if not Schedule.objects.filter(name=SCHEDULE_NAME).exists():
            schedule("shop.tasks.count_words", TEXT, name=SCHEDULE_NAME, schedule_type="H")
            self.stdout.write(f"scheduled    {SCHEDULE_NAME!r}")
