"""The public signals, with Django-Q2's names, senders and arguments."""

from __future__ import annotations

from django.dispatch import Signal

# sender="django_q", task=<task dict>
pre_enqueue = Signal()
# sender="django_q", func=<callable>, task=<task dict>
pre_execute = Signal()
# sender="django_q", task=<task dict>; sent after the result is saved
post_execute = Signal()
# sender="django_q", proc_name=<str>; sent in each new worker process
post_spawn = Signal()
# sender="django_q", func=<callable>, task=<task dict>; sent in the worker
post_execute_in_worker = Signal()

SENDER = "django_q"
