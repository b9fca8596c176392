"""The :class:`Broker` base class: what every broker (ORM, Redis, custom) provides."""

from __future__ import annotations

import functools
import os
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

from taskq.conf import ClusterConfig, get_config
from taskq.messages import Delivery


class Broker(ABC):
    """A queue of signed task packages.

    The first group of methods is Django-Q2's broker API; the second is what taskq's
    cluster uses: batched claims owned by a cluster, fenced acknowledgements, rescue of
    the tasks of dead clusters, and cluster heartbeats.
    """

    def __init__(self, list_key: str | None = None, config: ClusterConfig | None = None) -> None:
        self.config = config or get_config()
        self.list_key = list_key or self.config.queue_key
        # a cluster's processes take turns on it for their write transactions (SQLite)
        self.write_lock: AbstractContextManager[Any] = nullcontext()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.list_key!r}>"

    @functools.cached_property
    def owner_id(self) -> str:
        """The owner of claims made through :meth:`dequeue` (made when first needed: an
        enqueue, which makes a broker each time, never needs one)."""
        return uuid.uuid4().hex

    # Django-Q2's API ---------------------------------------------------------------
    @abstractmethod
    def enqueue(
        self,
        payload: str,
        *,
        priority: int = 0,
        run_after: datetime | None = None,
        task_id: str | None = None,
        name: str | None = None,
        func: str | None = None,
    ) -> Any:
        """Put a package on the queue; returns the broker's id for it."""

    def serialized(self) -> AbstractContextManager[Any]:
        """Held around the cluster's write transactions on this broker's database:
        ``write_lock`` where the database takes one writer at a time, else nothing."""
        return nullcontext()

    def dequeue(self) -> list[tuple[Any, str]]:
        """Claim up to ``bulk`` packages: a list of ``(ack_id, payload)``."""
        return [(d.ack_id, d.payload) for d in self.claim(self.owner_id, self.config.bulk)]

    def acknowledge(self, ack_id: Any) -> None:
        self.delete(ack_id)

    def fail(self, ack_id: Any) -> None:
        """Remove a task whose failure has been recorded."""
        self.delete(ack_id)

    @abstractmethod
    def delete(self, ack_id: Any) -> None:
        """Remove one task, claimed or not."""

    @abstractmethod
    def queue_size(self) -> int:
        """Tasks waiting to be claimed."""

    @abstractmethod
    def lock_size(self) -> int:
        """Tasks claimed and not yet acknowledged."""

    @abstractmethod
    def purge_queue(self) -> int:
        """Remove every task of this queue, waiting or claimed."""

    def delete_queue(self) -> int:
        return self.purge_queue()

    @abstractmethod
    def ping(self) -> bool:
        """True when the broker answers."""

    def info(self) -> str:
        return type(self).__name__

    # taskq's engine API ---------------------------------------------------------------
    @abstractmethod
    def claim(self, owner: str, count: int, token: str | None = None) -> list[Delivery]:
        """Claim up to ``count`` due tasks for ``owner``, highest priority first, under
        the claim token ``token`` (a fresh one when None)."""

    def abandon(self, owner: str, token: str) -> int:
        """Give back what a claim took whose answer never arrived (the connection broke:
        the claim may or may not have happened), with its attempt uncounted; returns how
        many tasks. Brokers that cannot tell give back nothing: what such a claim took
        returns when its cluster stops."""
        return 0

    @abstractmethod
    def ack_many(self, deliveries: Sequence[Delivery]) -> set[tuple[Any, str | None]]:
        """Remove the claimed tasks whose claim token still matches, in one statement.

        Returns the ``(ack_id, token)`` pairs that were removed; the others were rescued
        and claimed again since, and their outcome must be dropped.
        """

    @abstractmethod
    def release(
        self, deliveries: Iterable[Delivery], *, delay: float = 0, unstarted: bool = False
    ) -> int:
        """Give claimed tasks back to the queue (fenced by token); returns how many.

        ``unstarted=True`` (tasks handed back before any worker started them) takes back
        the attempt their claim counted."""

    @abstractmethod
    def orphans(self, retry: float) -> list[Delivery]:
        """Claimed tasks whose owner's heartbeat is older than ``retry`` seconds."""

    @abstractmethod
    def heartbeat(self, status: dict[str, Any]) -> None:
        """Write this cluster's heartbeat and status (``status['id']`` identifies it)."""

    @abstractmethod
    def remove_cluster(self, cluster_id: str) -> None:
        """Forget a cluster that stopped."""

    @abstractmethod
    def clusters(self) -> list[dict[str, Any]]:
        """Status of every cluster known to the broker, with ``age`` of its heartbeat."""

    @abstractmethod
    def prune_clusters(self, older_than: float) -> int:
        """Forget clusters whose heartbeat is older than ``older_than`` seconds."""

    def ready_size(self) -> int:
        """Tasks that could be claimed now (``queue_size`` counts delayed ones too)."""
        return self.queue_size()

    def claimed_payload(self, ack_id: Any, token: str | None) -> str | None:
        """The payload of a task still held under this claim, or None."""
        return None

    def parse_ack_id(self, text: str) -> Any:
        """An ack id from its text form (as worker slots store it)."""
        return text

    @property
    def pushes(self) -> bool:
        """True when :meth:`wait` returns as soon as a task is enqueued (a push wake-up),
        so that an idle cluster can poll slowly."""
        return False

    def wait(self, timeout: float) -> None:
        """Block until new work may be there, or ``timeout`` seconds pass.

        Brokers with a push wake-up (LISTEN/NOTIFY, a blocking pop) return as soon as a
        task is enqueued; the default just sleeps.
        """
        time.sleep(timeout)

    def wake(self) -> None:  # noqa: B027 - optional hook, nothing to wake by default
        """Wake the Pushers of this queue that wait in :meth:`wait`, as an enqueue would;
        a stopping cluster wakes its own. The other clusters of the queue wake too, and
        find nothing new. Brokers without a push wake-up have nothing to do."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections held by this broker (after a fork, or at exit)."""


def host_name() -> str:
    return socket.gethostname()


def process_id() -> int:
    return os.getpid()
