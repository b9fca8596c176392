"""The Django app: name ``taskq``, label ``django_q`` (Django-Q2's tables and admin URLs)."""

from __future__ import annotations

from django.apps import AppConfig


class TaskqConfig(AppConfig):
    name = "taskq"
    label = "django_q"
    default_auto_field = "django.db.models.AutoField"

    @property
    def verbose_name(self) -> str:  # type: ignore[override]
        from .conf import raw_settings

        try:
            return str(raw_settings().get("label", "Django Q"))
        except Exception:  # a broken Q_CLUSTER is reported by the system checks
            return "Django Q"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
