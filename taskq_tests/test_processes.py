"""Starting the cluster's children: they die with the Sentinel and inherit a frozen heap."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from taskq.cluster.channel import Channel
from taskq.cluster.processes import spawn


def report_freeze_count(channel: Channel) -> None:
    channel.put(gc.get_freeze_count())


def test_spawn_freezes_the_heap_for_the_child_only() -> None:
    channel = Channel()
    process = spawn("taskq-test-child", lambda: report_freeze_count(channel))
    try:
        assert channel.get(timeout=10) > 0  # inherited objects are skipped by its GC
    finally:
        process.join(timeout=10)
    assert gc.get_freeze_count() == 0  # the parent's garbage is still collected
    assert process.exitcode == 0


def report_name(channel: Channel) -> None:
    with open(f"/proc/{os.getpid()}/comm") as comm:
        channel.put(comm.read().strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_NAME is Linux's")
def test_a_child_carries_its_name_for_ps_and_top() -> None:
    channel = Channel()
    named = spawn("taskq-worker-3", lambda: report_name(channel))
    long = spawn("taskq-worker-12345", lambda: report_name(channel))
    try:
        names = {channel.get(timeout=10), channel.get(timeout=10)}
        assert names == {"taskq-worker-3", "taskq-worker-12"}  # the kernel keeps 15 bytes
    finally:
        named.join(timeout=10)
        long.join(timeout=10)
    with open(f"/proc/{os.getpid()}/comm") as comm:
        assert not comm.read().startswith("taskq-")  # the parent keeps its own name


def dead(pid: int) -> bool:
    """Gone, or a zombie that its new parent has not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dead(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_children_die_with_their_parent() -> None:
    # a parent that forks a child (die_with_parent on), prints its pid, then waits
    script = textwrap.dedent(
        """
        import os, sys, time
        from taskq.cluster.processes import die_with_parent
        pid = os.fork()
        if pid == 0:
            die_with_parent()
            time.sleep(60)
            os._exit(0)
        print(pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    try:
        child = int(parent.stdout.readline())
        time.sleep(0.2)  # the child has made its prctl call
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        gone = wait_gone(child, timeout=10)
        if not gone:
            os.kill(child, signal.SIGKILL)
        assert gone, "the child outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()
