"""The Cluster: ``qcluster``'s process. It installs the signal handlers and runs the
Sentinel; SIGTERM or SIGINT stops it gracefully, a second signal at once."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from taskq.conf import ClusterConfig

from .sentinel import Sentinel

logger = logging.getLogger(__name__)


class Cluster:
    def __init__(self, config: ClusterConfig, *, run_once: bool = False) -> None:
        self.config = config
        self.run_once = run_once
        self.signals_received = 0
        self.sentinel: Sentinel | None = None

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals_received += 1  # handlers only count; the Sentinel's loop acts on it

    def start(self) -> int:
        """Run until stopped; returns the process exit code."""
        previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.sentinel = Sentinel(self.config, run_once=self.run_once)
            return self.sentinel.run(lambda: self.signals_received)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
