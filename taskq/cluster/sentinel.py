"""The Sentinel owns the pool: it starts the Pusher, the Workers and the Monitor, and
every ``guard_cycle`` replaces dead children, kills tasks past their timeout, writes
the cluster's heartbeat and gives the tasks of dead clusters back to the queue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import time
import uuid
from collections.abc import Callable
from enum import Enum
from multiprocessing.connection import wait
from typing import Any

from django.db import close_old_connections
from django.utils import timezone

from taskq.brokers import Broker, get_broker
from taskq.conf import ClusterConfig
from taskq.messages import Delivery

from .channel import Relay
from .monitor import STOP, Monitor
from .processes import SignalWakeup, cpus_for, spawn
from .pusher import Pusher
from .settlement import lost_worker_outcome, rescue_orphans
from .state import Shared, WorkerState, running
from .status import cluster_status
from .trouble import Trouble
from .worker import LEAVE, Worker

logger = logging.getLogger(__name__)

EXITING = 0.1  # seconds to let a worker whose pipe closed finish exiting
LEAVING_GRACE = 30.0  # seconds a worker that left its slot may take to exit
TIMEOUT_GRACE = 2.0  # seconds between a task's soft timeout and killing its worker


class Phase(Enum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Sentinel:
    def __init__(
        self,
        config: ClusterConfig,
        *,
        run_once: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.run_once = run_once
        self.clock = clock
        self.id = uuid.uuid4().hex
        self.shared = Shared.create(config.workers, config.prefetch)
        self.broker: Broker = self.cluster_broker()
        self.relay = Relay(self.shared.result_queue)  # the Sentinel never blocks on a pipe
        self.wakeup: SignalWakeup | None = None  # made by run(): wakes nap() on a signal
        self.workers: list[Any] = [None] * config.workers
        self.leaving: list[tuple[Any, float]] = []  # (process, since): replaced, exiting
        self.pusher: Any = None
        self.monitor: Any = None
        self.phase = Phase.STARTING
        self.started = timezone.now()
        self.last_heartbeat = 0.0
        self.beating: str | None = None  # the id whose heartbeat was last written
        self.last_rescue = 0.0
        self.last_schedule = 0.0
        self.idle_checks = 0
        self.stop_requested = False
        self.killed: dict[int, str] = {}  # worker pid -> why the Sentinel killed it
        self.troubles = {
            "heartbeat": Trouble(logger, "heartbeat failed"),
            "rescue": Trouble(logger, "rescue failed"),
            "schedules": Trouble(logger, "running due schedules failed"),
        }

    # children -------------------------------------------------------------------------
    def start_worker(self, index: int) -> None:
        slot = self.shared.slots[index]
        slot.state = WorkerState.IDLE
        worker = Worker(self.config, self.shared, slot, self.config.queue_key)
        self.workers[index] = spawn(
            f"taskq-worker-{index}",
            worker.run,
            daemon=self.config.daemonize_workers,
            cpus=cpus_for(index, self.config.cpu_affinity),
        )

    def cluster_broker(self) -> Broker:
        """A broker for this cluster's processes: they take turns to write (SQLite)."""
        broker = get_broker(config=self.config)
        broker.write_lock = self.shared.write_lock
        return broker

    def start_pusher(self) -> None:
        """Start claiming, once this cluster's heartbeat is in the database.

        Claims made under an id that has no heartbeat yet look orphaned to the other
        clusters, which would take them back (or fail them, their attempts spent) while
        they run here. Until the first heartbeat of this id is written (the database may
        be locked or down at start-up) there is no Pusher; each guard cycle tries again.
        """
        if self.pusher is not None or self.beating != self.id:
            return
        pusher = Pusher(self.config, self.cluster_broker(), self.shared, self.id)
        self.pusher = spawn("taskq-pusher", pusher.run)

    def start_monitor(self) -> None:
        monitor = Monitor(self.config, self.cluster_broker(), self.shared)
        self.monitor = spawn("taskq-monitor", monitor.run)

    def start(self) -> None:
        self.heartbeat(force=True)
        for index in range(self.config.workers):
            self.start_worker(index)
        self.start_monitor()
        self.start_pusher()
        self.phase = Phase.RUNNING
        logger.info(
            "cluster %s started: queue=%s workers=%s pid=%s",
            self.id[:8],
            self.config.queue_key,
            self.config.workers,
            os.getpid(),
        )
        self.heartbeat(force=True)

    # the guard cycle -------------------------------------------------------------------
    def step(self) -> None:
        now = self.clock()
        self.guard_workers(now)
        if self.phase is Phase.RUNNING:
            self.guard_core()
        self.heartbeat()
        if self.phase is Phase.RUNNING:
            self.start_pusher()  # if the heartbeat it waits for is written now
        if now - self.last_rescue >= self.config.heartbeat:
            self.rescue_orphans()
            self.last_rescue = now
        if self.phase is Phase.RUNNING and self.config.scheduler:
            self.run_schedules(now)
        if self.run_once and self.phase is Phase.RUNNING and self.queue_drained():
            self.stop()

    def guard_workers(self, now: float) -> None:
        for index, process in enumerate(self.workers):
            slot = self.shared.slots[index]
            task = running(slot)
            if process is not None and process.is_alive():
                if slot.state == WorkerState.LEFT and self.phase is Phase.RUNNING:
                    self.leaving.append((process, now))  # it exits on its own
                    self.start_worker(index)
                    continue
                if task and task["deadline"] and now > task["deadline"] + TIMEOUT_GRACE:
                    logger.error(
                        "killing worker pid=%s: task_id=%s ran past its timeout",
                        process.pid,
                        task["task_id"],
                    )
                    self.killed[process.pid] = "timed out"
                    process.kill()
                continue
            if process is None:
                continue
            process.join(timeout=0)
            reason = self.killed.pop(process.pid, None)
            if task:
                self.settle(
                    task,
                    reason or f"worker died (exit code {process.exitcode})",
                    timed_out=reason == "timed out",
                )
            elif process.exitcode not in (0, None):
                logger.error("worker pid=%s died with exit code %s", process.pid, process.exitcode)
            self.workers[index] = None
            slot.state = WorkerState.STOPPED
            if self.phase is Phase.RUNNING:
                self.start_worker(index)
        self.reap_leaving(now)

    def reap_leaving(self, now: float) -> None:
        """Collect the workers that left their slots once they have exited; kill one that
        does not exit within ``LEAVING_GRACE`` (an ``atexit`` hook that hangs)."""
        still = []
        for process, since in self.leaving:
            if process.is_alive():
                if now - since > LEAVING_GRACE:
                    logger.warning(
                        "killing worker pid=%s: it left %.0fs ago and has not exited",
                        process.pid,
                        now - since,
                    )
                    process.kill()
                still.append((process, since))
            elif process.exitcode not in (0, None):
                logger.error("worker pid=%s exited with code %s", process.pid, process.exitcode)
        self.leaving = still

    def guard_core(self) -> None:
        """A dead Pusher or Monitor may have lost claimed tasks: claim anew under a new id."""
        dead = [
            name
            for name, p in (("pusher", self.pusher), ("monitor", self.monitor))
            if p is not None and not p.is_alive()
        ]
        if not dead:
            return
        logger.error(
            "%s died; restarting it under a new cluster id (held tasks return after retry=%ss)",
            " and ".join(dead),
            self.config.retry,
        )
        if self.pusher is not None:
            if self.pusher.is_alive():
                self.pusher.kill()
            self.pusher.join(timeout=5)
            self.pusher = None
        self.id = uuid.uuid4().hex
        self.heartbeat(force=True)
        if not self.monitor.is_alive():
            self.start_monitor()
        self.start_pusher()

    def settle(self, task: dict[str, Any], reason: str, *, timed_out: bool = False) -> None:
        """Record the task of a worker that died: retried or failed, per ``max_attempts``."""
        outcome = lost_worker_outcome(task, reason, self.broker, self.config, timed_out=timed_out)
        self.relay.put(outcome)

    def heartbeat(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self.last_heartbeat < self.config.heartbeat:
            return
        beating = self.id
        try:
            self.broker.heartbeat(cluster_status(self))
            self.last_heartbeat = now
            self.beating = beating
            self.troubles["heartbeat"].succeeded()
        except Exception:
            self.troubles["heartbeat"].failed()
            close_old_connections()

    def rescue_orphans(self) -> None:
        """Give back the tasks of clusters whose heartbeat stopped, or fail them if spent."""
        try:
            rescue_orphans(self.broker, self.config)
            self.troubles["rescue"].succeeded()
        except Exception:
            self.troubles["rescue"].failed()
            close_old_connections()

    def run_schedules(self, now: float) -> None:
        if now - self.last_schedule < self.config.schedule_interval:
            return
        self.last_schedule = now
        from taskq.scheduler import run_due

        try:
            run_due(self.config, self.broker)
            self.troubles["schedules"].succeeded()
        except Exception:
            self.troubles["schedules"].failed()
            close_old_connections()

    def queue_drained(self) -> bool:
        """Run-once: nothing ready in the queue and nothing held (two checks in a row)."""
        held = self.config.prefetch - self.shared.permits.get_value()
        idle = held == 0 and self.broker.ready_size() == 0 and self.broker.lock_size() == 0
        self.idle_checks = self.idle_checks + 1 if idle else 0
        return self.idle_checks >= 2

    # stopping --------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop claiming and give back what is held but not started; workers finish the
        tasks they run, and those waiting for one leave at once."""
        if self.phase in (Phase.STOPPING, Phase.STOPPED):
            return
        logger.info("cluster %s stopping", self.id[:8])
        self.phase = Phase.STOPPING
        self.shared.stop.set()
        self.wake_pusher()
        held: list[Delivery] = []
        killed = False
        if self.pusher is not None:
            # read the task channel meanwhile: a Pusher blocked on a full pipe gets to
            # finish its write, and is never killed in the middle of one
            deadline = time.monotonic() + max(5.0, self.config.poll * 2)
            while self.pusher.is_alive() and time.monotonic() < deadline:
                held += self.take_unstarted()
                self.pusher.join(timeout=0.02)
            if self.pusher.is_alive():
                self.pusher.kill()
                killed = True
        # a Pusher that left on its own wrote all it claimed: the channel holds it all now
        self.release_unstarted(held, wait=0.05 if killed else 0.0)
        if not killed:  # (a killed one may have left half a message in the pipe)
            self.dismiss_workers()

    def wake_pusher(self) -> None:
        """A Pusher asleep until the next enqueue or poll wakes and sees the stop."""
        try:
            self.broker.wake()
        except Exception:  # it wakes on its own at the end of its wait
            logger.debug("could not wake the pusher", exc_info=True)

    def take_unstarted(self, wait: float = 0.0) -> list[Delivery]:
        """What is on the task channel now (or within ``wait`` seconds). The permit of
        each task taken is given back, so that a Pusher waiting for one wakes (and, the
        stop being set, claims nothing)."""
        held = []
        while True:
            try:
                item = self.shared.task_queue.get(timeout=wait)
            except queue.Empty:
                return held
            if isinstance(item, Delivery):
                held.append(item)
                with contextlib.suppress(ValueError):  # never more than were taken
                    self.shared.permits.release()

    def release_unstarted(self, held: list[Delivery] | None = None, wait: float = 0.0) -> None:
        held = (held or []) + self.take_unstarted(wait=wait)
        if held:
            released = self.broker.release(held, unstarted=True)
            logger.info("gave %s held tasks back to the queue", released)

    def dismiss_workers(self) -> None:
        """One :data:`LEAVE` per worker on the (now empty) task channel: a worker waiting
        for a task leaves at once; one that is running a task leaves when it is done.
        Written directly: nothing else writes to the channel any more, and a few bytes
        never fill its pipe."""
        waiting = sum(1 for p in self.workers if p is not None and p.is_alive())
        if waiting:
            self.shared.task_queue.put_many([LEAVE] * waiting)

    def finish(self) -> None:
        """After the workers left: flush the Monitor and forget this cluster."""
        self.relay.put(STOP)
        if self.monitor is not None:
            self.monitor.join(timeout=60)
            if self.monitor.is_alive():
                logger.error("monitor did not flush in time; killing it")
                self.monitor.kill()
        self.broker.remove_cluster(self.id)
        self.phase = Phase.STOPPED
        logger.info("cluster %s stopped", self.id[:8])

    def worker_processes(self) -> list[Any]:
        """Every worker process: those in the slots and those still exiting after leaving."""
        return [*self.workers, *(process for process, _since in self.leaving)]

    def workers_alive(self) -> bool:
        return any(p is not None and p.is_alive() for p in self.worker_processes())

    def kill(self) -> None:
        """Stop at once: held tasks come back after ``retry``."""
        for process in [*self.worker_processes(), self.pusher, self.monitor]:
            if process is not None and process.is_alive():
                process.kill()
        self.phase = Phase.STOPPED

    def run(self, should_stop: Callable[[], int]) -> int:
        """Guard until stopped; ``should_stop()`` counts the stop signals received."""
        self.wakeup = SignalWakeup()
        self.wakeup.install()
        try:
            return self.guard(should_stop)
        finally:
            self.wakeup.close()
            self.wakeup = None

    def guard(self, should_stop: Callable[[], int]) -> int:
        self.start()
        while self.phase is not Phase.STOPPED:
            signals_received = should_stop()
            if signals_received >= 2:
                logger.warning("second stop signal: stopping at once")
                self.kill()
                return 1
            if signals_received == 1:
                self.stop()
            self.step()
            if self.phase is Phase.STOPPING and not self.workers_alive():
                self.finish()
                break
            self.nap(self.config.guard_cycle)
        return 0

    def nap(self, seconds: float) -> None:
        """Sleep until the next guard cycle, a signal, or a worker's departure or exit: a
        recycled worker is replaced at once, and a stop begins at once."""
        waitables: list[Any] = [p.sentinel for p in self.workers if p is not None]
        waitables.append(self.shared.departures)
        if self.wakeup is not None:
            waitables.append(self.wakeup)
        ready = wait(waitables, seconds)
        for process in self.workers:
            if process is not None and process.sentinel in ready:
                # its pipe closes a moment before it can be reaped: wait for that moment
                # rather than spin through guard cycles that still see it alive
                process.join(timeout=EXITING)
        self.shared.departures.drain()
        if self.wakeup is not None:
            self.wakeup.drain()
