"""taskq's models: Django-Q2's tables (same names and columns), plus taskq's own."""

from __future__ import annotations

import keyword
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from . import schedules
from .fields import PickledObjectField


class Task(models.Model):
    """A finished task: its arguments, its result and when it ran."""

    id = models.CharField(max_length=32, primary_key=True, editable=False)
    name = models.CharField(max_length=100, editable=False)
    func = models.CharField(max_length=256)
    hook = models.CharField(max_length=256, null=True)
    args = PickledObjectField(null=True, protocol=-1)
    kwargs = PickledObjectField(null=True, protocol=-1)
    result = PickledObjectField(null=True, protocol=-1)
    group = models.CharField(max_length=100, editable=False, null=True)
    cluster = models.CharField(max_length=100, default=None, null=True, blank=True)
    started = models.DateTimeField(editable=False)
    stopped = models.DateTimeField(editable=False)
    success = models.BooleanField(default=True, editable=False)
    attempt_count = models.IntegerField(default=0)

    class Meta:
        app_label = "django_q"
        verbose_name = _("Task")
        verbose_name_plural = _("Tasks")
        ordering = ["-stopped"]
        indexes = [
            models.Index(
                name="success_index", fields=["group", "name", "func"], condition=Q(success=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.id}"

    @staticmethod
    def get_task(task_id: str) -> Task | None:
        """The task with this id, or else with this name."""
        if len(task_id) == 32:
            task = Task.objects.filter(id=task_id).first()
            if task is not None:
                return task
        return Task.objects.filter(name=task_id).first()

    @staticmethod
    def get_result(task_id: str) -> Any:
        task = Task.get_task(task_id)
        return task.result if task is not None else None

    @staticmethod
    def get_task_group(group_id: str, failures: bool = True) -> models.QuerySet[Task]:
        tasks = Task.objects.filter(group=group_id)
        return tasks if failures else tasks.exclude(success=False)

    @staticmethod
    def get_result_group(group_id: str, failures: bool = False) -> models.QuerySet:
        tasks = Task.get_task_group(group_id, failures=failures)
        return tasks.values_list("result", flat=True)

    def group_result(self, failures: bool = False) -> models.QuerySet | None:
        return self.get_result_group(self.group, failures) if self.group else None

    @staticmethod
    def get_group_count(group_id: str, failures: bool = False) -> int:
        if failures:
            return Failure.objects.filter(group=group_id).count()
        return Task.objects.filter(group=group_id).count()

    def group_count(self, failures: bool = False) -> int | None:
        return self.get_group_count(self.group, failures) if self.group else None

    @staticmethod
    def delete_group(group_id: str, objects: bool = False) -> Any:
        group = Task.objects.filter(group=group_id)
        return group.delete() if objects else group.update(group=None)

    def group_delete(self, tasks: bool = False) -> Any:
        return self.delete_group(self.group, tasks) if self.group else None

    def time_taken(self) -> float:
        return (self.stopped - self.started).total_seconds()


class SuccessManager(models.Manager["Success"]):
    def get_queryset(self) -> models.QuerySet[Success]:
        return super().get_queryset().filter(success=True)


class Success(Task):
    objects = SuccessManager()

    class Meta:
        app_label = "django_q"
        proxy = True
        verbose_name = _("Successful task")
        verbose_name_plural = _("Successful tasks")
        ordering = ["-stopped"]


class FailureManager(models.Manager["Failure"]):
    def get_queryset(self) -> models.QuerySet[Failure]:
        return super().get_queryset().filter(success=False)


class Failure(Task):
    objects = FailureManager()

    class Meta:
        app_label = "django_q"
        proxy = True
        verbose_name = _("Failed task")
        verbose_name_plural = _("Failed tasks")
        ordering = ["-stopped"]


def validate_cron(value: str) -> None:
    try:
        schedules.validate("C", minutes=None, cron=value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


def validate_kwarg(value: str) -> None:
    if not value.isidentifier() or keyword.iskeyword(value):
        raise ValidationError(
            _("%(value)r is not a valid keyword argument name"), params={"value": value}
        )


def validate_args(value: str) -> None:
    try:
        schedules.parse_args(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


def validate_kwargs(value: str) -> None:
    try:
        schedules.parse_kwargs(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


class ScheduleQuerySet(models.QuerySet["Schedule"]):
    def due(self, now: Any) -> ScheduleQuerySet:
        return self.filter(next_run__lte=now).exclude(repeats=0)


class Schedule(models.Model):
    """A task to enqueue on a timetable."""

    ONCE = "O"
    MINUTES = "I"
    HOURLY = "H"
    DAILY = "D"
    WEEKLY = "W"
    BIWEEKLY = "BW"
    MONTHLY = "M"
    BIMONTHLY = "BM"
    QUARTERLY = "Q"
    YEARLY = "Y"
    CRON = "C"
    TYPE = tuple((kind.value, _(label)) for kind, label in schedules.LABELS.items())

    name = models.CharField(max_length=100, null=True, blank=True)
    func = models.CharField(max_length=256, help_text=_("e.g. module.tasks.function"))
    hook = models.CharField(
        max_length=256, null=True, blank=True, help_text=_("e.g. module.tasks.result_function")
    )
    args = models.TextField(
        null=True, blank=True, help_text=_("e.g. 1, 2, 'John'"), validators=[validate_args]
    )
    kwargs = models.TextField(
        null=True,
        blank=True,
        help_text=_("e.g. x=1, y=2, name='John'"),
        validators=[validate_kwargs],
    )
    schedule_type = models.CharField(
        max_length=2, choices=TYPE, default=ONCE, verbose_name=_("Schedule Type")
    )
    minutes = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text=_("Number of minutes for the Minutes type")
    )
    repeats = models.IntegerField(default=-1, help_text=_("n = n times, -1 = forever"))
    next_run = models.DateTimeField(default=timezone.now, null=True, verbose_name=_("Next Run"))
    cron = models.CharField(
        max_length=100,
        null=True,
        blank=True,
        validators=[validate_cron],
        help_text=_("Cron expression"),
    )
    task = models.CharField(max_length=100, null=True, editable=False)
    cluster = models.CharField(max_length=100, default=None, null=True, blank=True)
    intended_date_kwarg = models.CharField(
        max_length=100,
        null=True,
        blank=True,
        validators=[validate_kwarg],
        help_text=_("Name of kwarg to pass intended schedule date"),
    )

    # taskq's own column: the first run of the timetable, from which every run is counted
    # (month-end clamping, DST gaps). NULL in Django-Q2's rows: their next_run serves.
    anchor = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ScheduleQuerySet.as_manager()

    _loaded: tuple[Any, ...] | None = None  # timetable() as read from the database

    class Meta:
        app_label = "django_q"
        verbose_name = _("Scheduled task")
        verbose_name_plural = _("Scheduled tasks")
        ordering = ["next_run"]

    def __str__(self) -> str:
        return self.name or self.func

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Cron schedules start at their first match; a new or changed timetable is
        anchored at ``next_run``. The scheduler's own updates do not come here."""
        if self.cron:
            self.schedule_type = self.CRON
        loaded, now = self._loaded, timezone.now()
        if self.schedule_type == self.CRON and self._state.adding:
            start = max(self.next_run or now, now)  # the first match from next_run on
            self.next_run = self.calculate_next_run(start - timedelta(microseconds=1))
        elif self.schedule_type == self.CRON and self.new_expression():
            self.next_run = self.calculate_next_run(now - timedelta(microseconds=1))
        if self.next_run is not None and (
            self.anchor is None or (loaded is not None and loaded != self.timetable())
        ):
            self.anchor = self.next_run
            update_fields = kwargs.get("update_fields")
            if update_fields is not None and "anchor" not in update_fields:
                kwargs["update_fields"] = [*update_fields, "anchor"]
        super().save(*args, **kwargs)
        self._loaded = self.timetable()

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any, **kwargs: Any) -> Schedule:
        row = super().from_db(db, field_names, values, **kwargs)  # Django 6.1: fetch_mode
        if not row.get_deferred_fields() & {"next_run", "schedule_type", "minutes", "cron"}:
            row._loaded = row.timetable()
        return row

    def timetable(self) -> tuple[Any, ...]:
        """The timetable fields, ``next_run`` to the second (the admin's form drops the
        microseconds of a value it did not change)."""
        run = self.next_run.replace(microsecond=0) if self.next_run is not None else None
        return (run, self.schedule_type, self.minutes, self.cron or None)

    def new_expression(self) -> bool:
        """An active schedule read from the database has a new cron expression, and the
        same ``next_run``: its next run is the new expression's first match."""
        loaded = self._loaded
        if loaded is None or self.next_run is None:
            return False
        return loaded[3] != (self.cron or None) and loaded[0] == self.timetable()[0]

    def clean(self) -> None:
        if self.cron:
            self.schedule_type = self.CRON
        try:
            schedules.validate(self.schedule_type, minutes=self.minutes, cron=self.cron)
        except ValueError as exc:
            field = "cron" if self.schedule_type == self.CRON else "minutes"
            if "schedule type" in str(exc):
                field = "schedule_type"
            raise ValidationError({field: str(exc)}) from exc
        if self.name and Schedule.objects.filter(name=self.name).exclude(pk=self.pk).exists():
            raise ValidationError({"name": f"A schedule named {self.name!r} already exists."})

    def calculate_next_run(self, next_run: datetime | None = None) -> datetime | None:
        """The run after ``next_run`` (default: this schedule's ``next_run``), counted
        from the schedule's anchor; ``None`` when there is none."""
        from .conf import get_config

        after = next_run or self.next_run or timezone.now()
        return schedules.next_run(
            self.schedule_type,
            anchor=self.anchor or self.next_run or after,
            after=after,
            tz=ZoneInfo(get_config().zone),
            minutes=self.minutes,
            cron=self.cron,
        )

    def success(self) -> bool | None:
        task = Task.objects.filter(id=self.task).first() if self.task else None
        return task.success if task is not None else None

    success.boolean = True  # type: ignore[attr-defined]
    success.short_description = _("success")  # type: ignore[attr-defined]

    def last_run(self) -> str | None:
        task = Task.objects.filter(id=self.task).first() if self.task else None
        if task is None:
            return None
        view = "success" if task.success else "failure"
        url = reverse(f"admin:django_q_{view}_change", args=(task.id,))
        return format_html('<a href="{}">[{}]</a>', url, task.name)

    last_run.short_description = _("last run")  # type: ignore[attr-defined]


class OrmQ(models.Model):
    """A queued task of the ORM broker (Django-Q2's columns, then taskq's)."""

    key = models.CharField(max_length=100)  # queue: the cluster name
    payload = models.TextField()  # signed pickled task dict
    lock = models.DateTimeField(null=True)  # not delivered before this time
    # taskq's own columns
    priority = models.SmallIntegerField(default=0)
    owner = models.CharField(max_length=32, null=True, blank=True)  # claiming cluster id
    token = models.CharField(max_length=32, null=True, blank=True)  # claim token: fences acks
    attempt = models.IntegerField(default=0)  # deliveries so far
    claimed = models.DateTimeField(null=True, blank=True)
    task_ident = models.CharField(max_length=32, null=True, blank=True, db_column="task_id")
    task_name = models.CharField(max_length=100, null=True, blank=True, db_column="name")
    task_func = models.CharField(max_length=256, null=True, blank=True, db_column="func")

    class Meta:
        app_label = "django_q"
        verbose_name = _("Queued task")
        verbose_name_plural = _("Queued tasks")
        indexes = [
            models.Index(
                "key",
                models.F("priority").desc(),
                "id",
                name="taskq_ormq_claim",
                condition=Q(owner__isnull=True),
            ),
            models.Index(
                fields=["owner"], name="taskq_ormq_owner", condition=Q(owner__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return str(self.task_ident or self.pk)

    @cached_property
    def task(self) -> dict[str, Any]:
        """The decoded task dict, or ``{"id": "*<error>", "error": ...}`` when it cannot be read."""
        from . import signing
        from .conf import get_config

        try:
            return signing.loads(self.payload, salt=get_config().name)
        except Exception as exc:
            return {"id": f"*{type(exc).__name__}", "error": str(exc)}

    def func(self) -> str:
        from .messages import func_repr

        return self.task_func or func_repr(self.task.get("func"))

    def task_id(self) -> str | None:
        return self.task_ident or self.task.get("id")

    def name(self) -> str | None:
        return self.task_name or self.task.get("name")

    def group(self) -> str | None:
        return self.task.get("group")

    def args(self) -> Any:
        return self.task.get("args")

    def kwargs(self) -> Any:
        return self.task.get("kwargs")

    def q_options(self) -> dict[str, Any]:
        exclude = {"id", "name", "group", "func", "args", "kwargs"}
        return {k: v for k, v in self.task.items() if k not in exclude}

    func.short_description = _("Function")  # type: ignore[attr-defined]
    task_id.short_description = _("Task id")  # type: ignore[attr-defined]
    name.short_description = _("Name")  # type: ignore[attr-defined]
    group.short_description = _("Group")  # type: ignore[attr-defined]
    args.short_description = _("Arguments")  # type: ignore[attr-defined]
    kwargs.short_description = _("Keyword arguments")  # type: ignore[attr-defined]
    q_options.short_description = _("Queue options")  # type: ignore[attr-defined]


class Cluster(models.Model):
    """A running cluster's heartbeat and status, written by its Sentinel."""

    id = models.CharField(max_length=32, primary_key=True)
    name = models.CharField(max_length=100)  # the queue it serves
    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    state = models.CharField(max_length=20)
    started = models.DateTimeField()
    heartbeat = models.DateTimeField(db_index=True)  # database clock
    workers = models.JSONField(default=list)  # [{pid, task_id, task_name, since, rss}]
    held = models.IntegerField(default=0)
    processed = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    rejected = models.IntegerField(default=0)  # late results refused by the claim token
    rss = models.IntegerField(default=0)  # KiB, whole cluster

    class Meta:
        app_label = "django_q"
        db_table = "taskq_cluster"
        verbose_name = _("Cluster")
        verbose_name_plural = _("Clusters")
        ordering = ["name", "host", "pid"]

    def __str__(self) -> str:
        return f"{self.name}@{self.host}:{self.pid}"
