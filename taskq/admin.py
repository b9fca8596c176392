"""The admin under ``/admin/django_q/``: results, schedules, the ORM queue and the clusters page."""

from __future__ import annotations

from datetime import datetime
from pprint import pformat
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.contrib.messages import ERROR, WARNING
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import truncatechars
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .brokers import get_broker
from .brokers.orm import OrmBroker
from .conf import get_config
from .enqueue import build_message, submit
from .exceptions import InvalidTask
from .execution import import_func
from .models import Cluster, Failure, OrmQ, Schedule, Success, Task
from .scheduler import schedule_task
from .status import STALE_BEATS, cluster_status, duration

TRACEBACK = "Traceback (most recent call last):"


def pre(value: Any) -> SafeString:
    """A value as readable, escaped, preformatted text."""
    text = value if isinstance(value, str) else pformat(value, width=100, sort_dicts=False)
    return format_html('<pre class="taskq-pre">{}</pre>', text)


def split_failure(result: Any) -> tuple[str, str]:
    """A failure's stored result as ``(error message, traceback)``."""
    text = "" if result is None else str(result)
    head, sep, tail = text.partition(f" : {TRACEBACK}")
    return (head, TRACEBACK + tail) if sep else (text, "")


def label(row: Schedule) -> str:
    return row.name or row.func


def has_model_perm(request: HttpRequest, opts: Any, action: str) -> bool:
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


class ResultAdmin(admin.ModelAdmin):
    """Read-only finished tasks: the change page is a detail page, nothing is added."""

    list_display = ("name", "func", "started", "stopped", "time_taken", "group", "cluster")
    search_fields = ("name", "func", "group", "id")
    list_filter = ("stopped", "group", "cluster")
    date_hierarchy = "stopped"
    fields = (
        "id",
        "name",
        "func",
        "hook",
        "group",
        "cluster",
        "started",
        "stopped",
        "time_taken",
        "attempt_count",
        "arguments",
        "keyword_arguments",
        "outcome",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # results are history; view permission shows the detail page

    @admin.display(description=_("Time taken"), ordering=F("stopped") - F("started"))
    def time_taken(self, obj: Task) -> str:
        return f"{obj.time_taken():.3f}s"

    @admin.display(description=_("Args"))
    def arguments(self, obj: Task) -> SafeString:
        return pre(obj.args)

    @admin.display(description=_("Kwargs"))
    def keyword_arguments(self, obj: Task) -> SafeString:
        return pre(obj.kwargs or {})

    @admin.display(description=_("Result"))
    def outcome(self, obj: Task) -> SafeString:
        return pre(obj.result)


@admin.register(Success)
class SuccessAdmin(ResultAdmin):
    pass


@admin.register(Failure)
class FailureAdmin(ResultAdmin):
    list_display = (*ResultAdmin.list_display, "attempt_count", "error")
    fields = (*ResultAdmin.fields[:-1], "error", "traceback")
    readonly_fields = fields
    actions = ["resubmit"]

    @admin.display(description=_("Error"))
    def error(self, obj: Task) -> str:
        return truncatechars(split_failure(obj.result)[0], 200)

    @admin.display(description=_("Traceback"))
    def traceback(self, obj: Task) -> SafeString:
        return pre(split_failure(obj.result)[1] or "-")

    def has_resubmit_permission(self, request: HttpRequest) -> bool:
        return has_model_perm(request, self.opts, "change")

    @admin.action(description=_("Resubmit selected tasks"), permissions=["resubmit"])
    def resubmit(self, request: HttpRequest, queryset: QuerySet[Failure]) -> None:
        """Enqueue each failure again under its id; the row becomes a success if it passes."""
        config = get_config()
        failures = list(queryset)
        queue = OrmQ.objects.using(config.orm)  # maybe not the results' database: no subquery
        queue = queue.filter(task_ident__in=[failure.id for failure in failures])
        queued = set(queue.values_list("task_ident", flat=True))
        count = 0
        for failure in failures:
            if failure.id in queued:
                text = _("%(name)s is already queued.")
                self.message_user(request, text % {"name": failure.name}, WARNING)
                continue
            options = {
                "task_name": failure.name,
                "hook": failure.hook,
                "group": failure.group,
                "cluster": failure.cluster,
            }
            args, kwargs = failure.args or (), failure.kwargs or {}
            try:
                message = build_message(
                    failure.func, args, kwargs, options, config, task_id=failure.id
                )
                submit(message, config=config)
            except InvalidTask as exc:
                text = _("%(name)s was not resubmitted: %(error)s")
                self.message_user(request, text % {"name": failure.name, "error": exc}, ERROR)
                continue
            except Exception as exc:  # sync mode ran it here and re-raised the task's error
                text = _("%(name)s ran again and failed: %(error)s")
                self.message_user(request, text % {"name": failure.name, "error": exc}, ERROR)
                continue
            count += 1
        if count:
            text = ngettext("Resubmitted %(count)d task.", "Resubmitted %(count)d tasks.", count)
            self.message_user(request, text % {"count": count})


class ScheduleForm(forms.ModelForm):
    """Checks that ``func`` and ``hook`` import; the model validates the rest."""

    class Meta:
        model = Schedule
        fields = (
            "name",
            "func",
            "hook",
            "args",
            "kwargs",
            "schedule_type",
            "minutes",
            "repeats",
            "next_run",
            "cron",
            "cluster",
            "intended_date_kwarg",
        )
        help_texts = {"next_run": _("Empty: paused.")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["next_run"].required = False

    def clean_func(self) -> str:
        return self.importable(self.cleaned_data["func"])

    def clean_hook(self) -> str | None:
        return self.importable(self.cleaned_data.get("hook")) or None

    @staticmethod
    def importable(path: str | None) -> str | None:
        if path:
            try:
                import_func(path)
            except Exception as exc:
                raise ValidationError(
                    _("%(path)r does not import to a callable: %(error)s"),
                    params={"path": path, "error": exc},
                ) from exc
        return path

    def add_error(self, field: str | None, error: Any) -> None:
        """As Django's, but a message is shown once (``cron``'s validator and ``clean()`` agree)."""
        super().add_error(field, error)
        for errors in self._errors.values():
            unique = {tuple(e.messages): e for e in reversed(errors.as_data())}
            errors.data[:] = reversed(unique.values())


class ScheduleStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [("active", _("Active")), ("paused", _("Paused")), ("finished", _("Finished"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> QuerySet[Schedule]:
        if self.value() == "active":
            return queryset.filter(next_run__isnull=False).exclude(repeats=0)
        if self.value() == "paused":
            return queryset.filter(next_run__isnull=True).exclude(repeats=0)
        if self.value() == "finished":
            return queryset.filter(repeats=0)
        return queryset


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = (
        "id",
        "name",
        "func",
        "schedule_type",
        "repeats",
        "next_run",
        "active",
        "last_run",
        "success",
        "cluster",
    )
    list_display_links = ("id", "name")
    list_filter = (ScheduleStateFilter, "schedule_type", "cluster", "next_run")
    search_fields = ("name", "func")
    actions = ["run_now", "pause", "resume"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        last = Task.objects.filter(id=OuterRef("task"))
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_name=Subquery(last.values("name")[:1]),
                last_success=Subquery(last.values("success")[:1]),
            )
        )

    @admin.display(description=_("Active"), boolean=True)
    def active(self, obj: Schedule) -> bool:
        return obj.next_run is not None and obj.repeats != 0

    @admin.display(description=_("Last run"))
    def last_run(self, obj: Schedule) -> str | None:
        if obj.last_name is None:  # type: ignore[attr-defined]
            return None
        view = "success" if obj.last_success else "failure"  # type: ignore[attr-defined]
        url = reverse(f"{self.admin_site.name}:django_q_{view}_change", args=(obj.task,))
        return format_html('<a href="{}">[{}]</a>', url, obj.last_name)  # type: ignore[attr-defined]

    @admin.display(description=_("Success"), boolean=True)
    def success(self, obj: Schedule) -> bool | None:
        return obj.last_success  # type: ignore[attr-defined]

    @admin.action(description=_("Run now"), permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        """Enqueue one run of each; ``next_run`` and ``repeats`` stay as they are."""
        count = 0
        for row in queryset:
            try:
                schedule_task(row, intended=timezone.now())
            except Exception as exc:  # bad stored args, a func gone, or sync mode's task error
                text = _("%(schedule)s did not run: %(error)s")
                self.message_user(request, text % {"schedule": label(row), "error": exc}, ERROR)
                continue
            count += 1
        if count:
            text = ngettext(
                "Enqueued %(count)d scheduled task.", "Enqueued %(count)d scheduled tasks.", count
            )
            self.message_user(request, text % {"count": count})

    @admin.action(description=_("Pause selected schedules"), permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        count = queryset.filter(next_run__isnull=False).update(next_run=None)
        text = ngettext("Paused %(count)d schedule.", "Paused %(count)d schedules.", count)
        self.message_user(request, text % {"count": count})

    @admin.action(description=_("Resume selected schedules"), permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        """Back on the original timetable at its next slot; a once schedule runs now."""
        now, count = timezone.now(), 0
        for row in queryset.filter(next_run__isnull=True):
            next_run = now if row.schedule_type == Schedule.ONCE else row.calculate_next_run(now)
            if next_run is None:
                text = _("%(schedule)s has no run left to resume.")
                self.message_user(request, text % {"schedule": label(row)}, WARNING)
                continue
            paused = Schedule.objects.filter(pk=row.pk, next_run__isnull=True)
            count += paused.update(next_run=next_run)
        text = ngettext("Resumed %(count)d schedule.", "Resumed %(count)d schedules.", count)
        self.message_user(request, text % {"count": count})


class HeldFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "held"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [("no", _("Waiting")), ("yes", _("Held by a cluster"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[OrmQ]) -> QuerySet[OrmQ]:
        if self.value() in ("yes", "no"):
            return queryset.filter(owner__isnull=self.value() == "no")
        return queryset


@admin.register(OrmQ)
class QueueAdmin(admin.ModelAdmin):
    """The ORM broker's queue; deleting a row cancels the task."""

    list_display = (
        "id",
        "task_id",
        "name",
        "func",
        "key",
        "priority",
        "not_before",
        "held_by",
        "attempt",
    )
    list_filter = ("key", HeldFilter)
    search_fields = ("task_ident", "task_name", "task_func")
    ordering = ("key", "-priority", "id")
    fields = (
        "key",
        "task_id",
        "name",
        "func",
        "group",
        "priority",
        "not_before",
        "held_by",
        "claimed",
        "attempt",
        "arguments",
        "keyword_arguments",
        "options",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrmQ]:
        return super().get_queryset(request).using(get_config().orm)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("Not before"), ordering="lock")
    def not_before(self, obj: OrmQ) -> datetime | None:
        return obj.lock

    @admin.display(description=_("Held by"), ordering="owner")
    def held_by(self, obj: OrmQ) -> str | None:
        if not obj.owner:
            return None
        url = reverse(f"{self.admin_site.name}:django_q_cluster_changelist")
        return format_html('<a href="{}#cluster-{}">{}</a>', url, obj.owner, obj.owner)

    @admin.display(description=_("Args"))
    def arguments(self, obj: OrmQ) -> SafeString:
        return pre(obj.args())

    @admin.display(description=_("Kwargs"))
    def keyword_arguments(self, obj: OrmQ) -> SafeString:
        return pre(obj.kwargs())

    @admin.display(description=_("Options"))
    def options(self, obj: OrmQ) -> SafeString:
        return pre(obj.q_options())


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    """No model forms: the changelist URL shows the clusters page, read from the broker."""

    clusters_template = "taskq/admin/clusters.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.clusters_view)
        return [path("", view, name=f"{self.opts.app_label}_{self.opts.model_name}_changelist")]

    def clusters_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        config = get_config()
        broker = get_broker(config=config)
        rows = [cluster_row(row, config) for row in broker.clusters()]
        context = {
            **self.admin_site.each_context(request),
            "title": Cluster._meta.verbose_name_plural,
            "opts": self.opts,
            "clusters": rows,
            "queues": queue_status(broker, {row["name"] for row in rows} | {config.queue_key}),
            "stale_after": duration(STALE_BEATS * config.heartbeat),
            "dead_after": duration(config.retry),
            "queue_url": self.queue_url(request),
        }
        return TemplateResponse(request, self.clusters_template, context)

    def queue_url(self, request: HttpRequest) -> str | None:
        """The queued tasks page, for a user who may view it."""
        if not self.admin_site.is_registered(OrmQ):
            return None
        if not self.admin_site.get_model_admin(OrmQ).has_view_permission(request):
            return None
        return reverse(f"{self.admin_site.name}:django_q_ormq_changelist")


def cluster_row(row: dict[str, Any], config: Any) -> dict[str, Any]:
    """A cluster's heartbeat row for the template, read as qinfo and qmonitor read it
    (:func:`taskq.status.cluster_status`): health, up time, heartbeat age and what each
    worker runs, as text."""
    status = cluster_status(row, config)
    workers = [
        {
            "pid": worker.pid,
            "task_id": worker.task_id,
            "task_name": worker.task_name,
            "running": duration(worker.running) if worker.task_id else "",
        }
        for worker in status.workers
    ]
    return {
        **row,
        "health": status.health,
        "uptime": duration(status.uptime),
        "age_text": duration(status.age),
        "workers": workers,
    }


def queue_status(broker: Any, keys: set[str]) -> list[dict[str, Any]]:
    """Per queue: waiting (due now), delayed, held, and how long the oldest due task waited."""
    if not isinstance(broker, OrmBroker):
        unknown = {"delayed": None, "held": None, "oldest": None}
        return [
            {"key": key, "waiting": get_broker(key, config=broker.config).queue_size(), **unknown}
            for key in sorted(keys)
        ]
    now = broker.now()
    due = Q(owner__isnull=True) & (Q(lock__isnull=True) | Q(lock__lte=now))
    table = OrmQ.objects.using(broker.alias)
    stats = {
        row["key"]: row
        for row in table.values("key").annotate(
            waiting=Count("id", filter=due),
            held=Count("id", filter=Q(owner__isnull=False)),
            delayed=Count("id", filter=Q(owner__isnull=True, lock__gt=now)),
        )
    }
    result = []
    for key in sorted(keys | set(stats)):
        row = stats.get(key) or {"key": key, "waiting": 0, "held": 0, "delayed": 0}
        oldest = table.filter(due, key=key).order_by(F("lock").asc(nulls_first=True), "id").first()
        since = oldest and (oldest.lock or oldest.task.get("started"))
        row["oldest"] = duration((now - since).total_seconds()) if since else None
        result.append(row)
    return result
