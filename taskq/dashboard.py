"""The terminal screens of ``qmonitor``, ``qinfo`` and ``qmemory``: taskq's only use of blessed.

Each screen is a function from a :class:`~taskq.status.Summary` to a list of lines.
On a terminal the lines are coloured and the live screens redraw in place every
second; anywhere else (a pipe, a file, a test) blessed emits no escape sequences and
the frames are printed one after the other as plain text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from blessed import Terminal
from django.db import DatabaseError, connections
from django.utils import timezone

from . import __version__
from .brokers import get_broker
from .conf import ClusterConfig
from .status import (
    DEAD,
    OK,
    ClusterStatus,
    Summary,
    clusters,
    config_lines,
    duration,
    host_memory,
    mib,
    summary,
)

NO_CLUSTERS = "No clusters running."
START_HINT = "Start one with: python manage.py qcluster"
QUIT_HINT = "[Press q to quit]"
HEADER = "black_on_green"
LABEL = "cyan"
SHORT_ID = 8  # characters of a cluster id shown when the full id does not fit
MONITOR_COLUMNS = ("Host", "Id", "Queue", "Pid", "State", "Pool", "Held", "Done", "Failed", "Up")
MEMORY_COLUMNS = (
    "Host",
    "Id",
    "Pid",
    "State",
    "Workers",
    "Workers MiB",
    "Others MiB",
    "Total MiB",
    "Largest worker",
)
WORKER_COLUMNS = ("Cluster", "Worker", "Pid", "MiB", "Done", "Running")
TEXT_COLUMNS = {"Host", "Id", "Queue", "State", "Pool", "Up", "Cluster", "Running"}
STATE_STYLES = {"running": "green", "starting": "yellow", "stopping": "yellow", "stopped": "red"}
HEALTH_STYLES = {OK: "green", "stale": "yellow", DEAD: "red"}


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    style: str = ""  # a blessed formatting name, "" for plain
    right: bool = False  # right-aligned (numbers)


def headers(names: Sequence[str]) -> list[Cell]:
    return [Cell(name, right=name not in TEXT_COLUMNS) for name in names]


def num(value: Any, style: str = "") -> Cell:
    return Cell(str(value), style, right=True)


def styled(term: Terminal, style: str, text: str) -> str:
    return getattr(term, style)(text) if style else text


def table(term: Terminal, headers: Sequence[Cell], rows: Sequence[Sequence[Cell]]) -> list[str]:
    """Aligned columns; widths are measured on the plain text, then styles are applied."""
    widths = [len(cell.text) for cell in headers]
    for row in rows:
        widths = [max(width, len(cell.text)) for width, cell in zip(widths, row, strict=True)]
    lines = []
    for index, row in enumerate([headers, *rows]):
        cells = []
        for cell, width in zip(row, widths, strict=True):
            text = cell.text.rjust(width) if cell.right else cell.text.ljust(width)
            cells.append(styled(term, HEADER if index == 0 else cell.style, text))
        lines.append("  ".join(cells).rstrip())
    return lines


def labelled(term: Terminal, label: str, value: str, width: int = 11) -> str:
    return styled(term, LABEL, label.ljust(width)) + " " + value


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def title(term: Terminal, broker: str, screen: str) -> str:
    now = timezone.template_localtime(timezone.now()).strftime("%Y-%m-%d %H:%M:%S")
    return styled(term, "bold", f"taskq {__version__} {screen} - {broker} - {now}")


def no_clusters(term: Terminal, clusters: Sequence[ClusterStatus]) -> list[str]:
    """Said plainly when no cluster is alive; dead ones are counted."""
    if any(cluster.alive for cluster in clusters):
        return []
    dead = len(clusters)
    note = f" ({plural(dead, 'dead cluster')}: no heartbeat for too long)" if dead else ""
    return [styled(term, "bold_red", NO_CLUSTERS + note), START_HINT]


def cluster_id(cluster: ClusterStatus, short: bool) -> str:
    return cluster.id[:SHORT_ID] if short else cluster.id


def fitted(term: Terminal, render: Callable[[bool], list[str]]) -> list[str]:
    """Full cluster ids, or short ones on a terminal too narrow for them."""
    lines = render(False)
    if term.is_a_tty and max((term.length(line) for line in lines), default=0) > width(term):
        lines = render(True)
    return lines


def state_cell(cluster: ClusterStatus) -> Cell:
    """The cluster's own state while its heartbeat is fresh; ``stale``/``dead`` when not."""
    if cluster.health != OK:
        return Cell(cluster.health, HEALTH_STYLES[cluster.health])
    return Cell(cluster.state, STATE_STYLES.get(cluster.state, ""))


def info_lines(term: Terminal, info: Summary) -> list[str]:
    running = info.running
    workers = sum(cluster.pool for cluster in running)
    busy = sum(cluster.busy for cluster in running)
    stale = sum(1 for cluster in running if cluster.health != OK)
    dead = len(info.clusters) - len(running)
    health = ", ".join(
        text for text in (f"{stale} stale" if stale else "", f"{dead} dead" if dead else "") if text
    )
    finished = info.recent_successes + info.recent_failures
    average = f"{info.average:.3f}s" if info.average is not None else "-"
    lines = [
        title(term, info.broker, "info"),
        labelled(term, "Clusters", f"{len(running)} running" + (f" ({health})" if health else "")),
        labelled(term, "Workers", f"{workers} ({busy} busy)"),
        labelled(
            term,
            "Queued",
            f"{info.queued} ({info.ready} ready, {info.queued - info.ready} delayed), "
            f"{info.claimed} claimed by clusters",
        ),
        labelled(term, "Successes", f"{info.successes} ({info.recent_successes} in the last 24 h)"),
        labelled(term, "Failures", f"{info.failures} ({info.recent_failures} in the last 24 h)"),
        labelled(term, "Schedules", f"{info.schedules} ({info.active_schedules} active)"),
        labelled(term, "Tasks/hour", f"{finished / 24:.2f} (finished in the last 24 h)"),
        labelled(term, "Avg time", f"{average} (successes in the last 24 h, enqueue to finish)"),
    ]
    if len(info.queues) > 1:
        for queue in info.queues:
            text = f"{queue.queued} queued ({queue.ready} ready), {queue.claimed} claimed"
            lines.append(labelled(term, f"  {queue.key}", text))
    lines.append("")
    lines.extend(no_clusters(term, info.clusters))
    for cluster in info.clusters:
        state = state_cell(cluster)
        lines.append(
            f"{styled(term, LABEL, 'Cluster')} {cluster.id}  {cluster.name}  "
            f"{cluster.host}:{cluster.pid}  {styled(term, state.style, state.text)}  "
            f"up {duration(cluster.uptime)}  {plural(cluster.pool, 'worker')}  "
            f"{cluster.processed} done  {cluster.failed} failed"
        )
    return lines


def monitor_lines(term: Terminal, info: Summary) -> list[str]:
    def render(short: bool) -> list[str]:
        rows: list[list[Cell]] = []
        for cluster in info.clusters:
            size = len(cluster.workers)
            rows.append(
                [
                    Cell(cluster.host),
                    Cell(cluster_id(cluster, short)),
                    Cell(cluster.name),
                    num(cluster.pid),
                    state_cell(cluster),
                    Cell(f"{cluster.busy}/{cluster.pool}", "yellow" if cluster.pool < size else ""),
                    num(cluster.held, "cyan" if cluster.held else ""),
                    num(cluster.processed),
                    num(cluster.failed, "red" if cluster.failed else ""),
                    Cell(duration(cluster.uptime)),
                ]
            )
        lines = table(term, headers(MONITOR_COLUMNS), rows)
        for cluster in info.clusters:
            for worker in cluster.workers:
                if worker.task_id and cluster.alive:
                    lines.append(
                        f"  {cluster_id(cluster, True)} worker {worker.index} (pid {worker.pid}) "
                        f"runs {worker.task_name or worker.task_id} for {duration(worker.running)}"
                    )
        return lines

    lines = [title(term, info.broker, "monitor"), ""]
    lines.extend(fitted(term, render) if info.clusters else [])
    lines.extend(no_clusters(term, info.clusters))
    lines.append("")
    lines.append(totals(term, info))
    return lines


def totals(term: Terminal, info: Summary) -> str:
    pairs = (
        ("Queued", f"{info.queued} ({info.ready} ready)"),
        ("Claimed", str(info.claimed)),
        ("Successes", str(info.successes)),
        ("Failures", str(info.failures)),
        ("Schedules", str(info.schedules)),
    )
    return "  ".join(f"{styled(term, 'black_on_cyan', label)} {value}" for label, value in pairs)


def memory_lines(
    term: Terminal, broker: str, clusters: list[ClusterStatus], config: ClusterConfig, workers: bool
) -> list[str]:
    def render(short: bool) -> list[str]:
        rows = []
        for cluster in clusters:
            largest = max((worker.rss for worker in cluster.workers), default=0)
            rows.append(
                [
                    Cell(cluster.host),
                    Cell(cluster_id(cluster, short)),
                    num(cluster.pid),
                    state_cell(cluster),
                    num(cluster.pool),
                    num(megabytes(cluster.workers_rss)),
                    num(megabytes(cluster.rss - cluster.workers_rss)),
                    num(megabytes(cluster.rss), "bold"),
                    num(megabytes(largest), over_limit(largest, config)),
                ]
            )
        lines = table(term, headers(MEMORY_COLUMNS), rows)
        if workers and clusters:
            lines.append("")
            lines.extend(table(term, headers(WORKER_COLUMNS), worker_rows(clusters, config, short)))
        return lines

    lines = [title(term, broker, "memory"), ""]
    lines.extend(fitted(term, render) if clusters else [])
    lines.extend(no_clusters(term, clusters))
    lines.append("")
    memory = host_memory()
    if memory:
        available, total = memory
        lines.append(
            labelled(
                term,
                "This host",
                f"{mib(available)} available of {mib(total)} ({available * 100 / total:.0f}%)",
            )
        )
    if config.max_rss:
        lines.append(
            labelled(term, "max_rss", f"{mib(config.max_rss)}: a worker above it is replaced")
        )
    return lines


def worker_rows(
    clusters: list[ClusterStatus], config: ClusterConfig, short: bool
) -> list[list[Cell]]:
    rows = []
    for cluster in clusters:
        for worker in cluster.workers:
            running = (
                f"{worker.task_name or worker.task_id} ({duration(worker.running)})"
                if worker.task_id
                else "-"
            )
            rows.append(
                [
                    Cell(cluster_id(cluster, short)),
                    num(worker.index),
                    num(worker.pid or "-"),
                    num(megabytes(worker.rss), over_limit(worker.rss, config)),
                    num(worker.done),
                    Cell(running),
                ]
            )
    return rows


def megabytes(kib: int) -> str:
    return f"{max(0, kib) / 1024:.1f}"


def over_limit(kib: int, config: ClusterConfig) -> str:
    return "red" if config.max_rss and kib > config.max_rss else ""


def terminal(stream: IO[str] | None = None) -> Terminal:
    """A blessed terminal on ``stream``: styled on a TTY, plain text anywhere else."""
    return Terminal(stream=stream)


def safely(term: Terminal, draw: Callable[[], list[str]]) -> list[str]:
    """A frame, or the database error that prevented it (the next frame tries again)."""
    try:
        return draw()
    except DatabaseError as exc:
        connections.close_all()
        return [styled(term, "bold_red", f"Cannot read the cluster status: {exc}")]


def write(term: Terminal, lines: Sequence[str]) -> None:
    term.stream.write("\n".join(lines) + "\n")
    term.stream.flush()


def live(
    term: Terminal,
    draw: Callable[[], list[str]],
    *,
    run_once: bool = False,
    interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Show ``draw()`` once, or redraw it every ``interval`` seconds until q or Ctrl-C."""
    if run_once:
        write(term, draw())
        return
    try:
        if term.is_a_tty:
            redraw(term, draw, interval, sleep)
        else:
            while True:
                write(term, [*safely(term, draw), ""])
                sleep(interval)
    except KeyboardInterrupt:
        return


def width(term: Terminal) -> int:
    return term.width or 80  # 0 on a terminal that does not report its size


def redraw(
    term: Terminal, draw: Callable[[], list[str]], interval: float, sleep: Callable[[float], None]
) -> None:
    """Full screen, redrawn in place; returns when q is pressed."""
    with term.fullscreen(), term.hidden_cursor(), term.cbreak():
        while True:
            lines = [*safely(term, draw), "", QUIT_HINT][: max(1, (term.height or 24) - 1)]
            screen = "".join(
                term.truncate(line, width(term)) + term.clear_eol + "\n" for line in lines
            )
            term.stream.write(term.home + screen + term.clear_eos)
            term.stream.flush()
            deadline = time.monotonic() + interval
            key = term.inkey(timeout=interval)
            if str(key).lower() == "q":
                return
            if not key:  # without a keyboard inkey() returns at once
                sleep(max(0.0, deadline - time.monotonic()))


def qinfo(
    stream: IO[str], err: IO[str], config: ClusterConfig, *, settings: bool, ids: bool
) -> None:
    """``qinfo``: the summary, or the settings and/or the ids of the running clusters."""
    term = terminal(stream)
    if settings:
        write(term, config_lines(config))
    if ids:
        running = [row for row in clusters(get_broker(config=config), config) if row.alive]
        if running:
            write(term, [cluster.id for cluster in running])
        else:
            err.write(NO_CLUSTERS + "\n")
    if not (settings or ids):
        write(term, info_lines(term, summary(config)))


def qmonitor(stream: IO[str], config: ClusterConfig, *, run_once: bool) -> None:
    term = terminal(stream)
    live(term, lambda: monitor_lines(term, summary(config)), run_once=run_once)


def qmemory(stream: IO[str], config: ClusterConfig, *, run_once: bool, workers: bool) -> None:
    term = terminal(stream)
    broker = get_broker(config=config)

    def draw() -> list[str]:
        return memory_lines(term, broker.info(), clusters(broker, config), config, workers)

    live(term, draw, run_once=run_once)
