"""A django-prodserver worker backend that runs ``qcluster``.

```python
PRODUCTION_PROCESSES = {
    "worker": {
        "BACKEND": "taskq.prodserver.TaskqWorker",
        "ARGS": {"verbosity": "1", "cluster-name": "priority"},
    },
}
```
then ``manage.py prodserver worker`` (django-prodserver 2.x) or ``manage.py worker
worker`` (3.x). ``ARGS`` become ``qcluster`` options (``--cluster-name=priority``).
"""

from __future__ import annotations

from typing import Any

from django.core import management
from django.core.exceptions import ImproperlyConfigured

try:  # django-prodserver 3.x tells server and worker backends apart
    from django_prodserver.backends.base import BaseWorkerBackend as Base
except ImportError:
    try:  # 2.x
        from django_prodserver.backends.base import BaseServerBackend as Base
    except ImportError as exc:
        raise ImproperlyConfigured(
            "taskq.prodserver.TaskqWorker needs django-prodserver: pip install django-prodserver"
        ) from exc


class TaskqWorker(Base):
    """Starts a taskq cluster with the configured ``ARGS`` as ``qcluster`` options."""

    def __init__(self, **server_args: Any) -> None:
        from django.apps import apps

        if not apps.is_installed("taskq"):
            raise ImproperlyConfigured("Add 'taskq' to INSTALLED_APPS to use TaskqWorker.")
        super().__init__(**server_args)

    def start_server(self, *args: str) -> None:
        management.call_command("qcluster", *args)
