"""A tour of taskq's admin in headless Chromium, with a screenshot of every page.

``nox -s browser`` runs it; ``python taskq_tests/browser/tour.py [--out DIR]`` does the
same in any environment with taskq, Django and ``playwright`` installed (never
``playwright install``: it drives Debian's ``chromium``, ``/usr/bin/chromium``, or the
browser that ``--chromium`` or ``TASKQ_CHROMIUM`` names).

It copies the example project into a temporary folder (with one more task module,
``warehouse``, whose task fails until its warehouse "opens"), migrates a new SQLite
database, creates the superuser admin / admin, enqueues the example tasks and a few more
(some fail, one waits an hour), adds a cron schedule, and starts ``qcluster`` and
``runserver`` on a free port of 127.0.0.1. Once the cluster has run the tasks, the
browser logs in and:

- visits the app index (it must link "Clusters"), the successful tasks and one task's
  page, the failed tasks and one failure's page (with its traceback), the scheduled
  tasks and a schedule's form, the queued tasks and one queued task's page, and the
  clusters page (it must show the running cluster's host and pid);
- resubmits a failed task with "Resubmit selected tasks" and checks that, once the
  cluster has run it again, its row has become a successful task;
- runs the cron schedule with "Run now" and checks that the task it created ran.

Each page is saved as a PNG, down to the end of its content, in the ``--out`` folder (a
new temporary folder by default), printed at the start and at the end, with the logs of
``qcluster`` and ``runserver``. On a failed check it prints what was expected, saves
``FAILED.png`` and the logs, and exits 1. Every wait has a time limit; the whole tour
takes well under two minutes (``--timeout``).

The screenshots in ``docs/_static/screenshots/`` are copies of this tour's.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example_project"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # as root Chromium refuses to start with its sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # no outgoing connections of its own: none may be made on a closed network
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 900}
# The admin's navigation sidebar starts closed: the pages get the whole width.
CLOSED_SIDEBAR = 'localStorage.setItem("django.admin.navSidebarIsOpen", "false")'
CONTENT_BOTTOM = "Math.ceil(document.querySelector('#content').getBoundingClientRect().bottom)"
ACTION_TIMEOUT_MS = 15_000  # one click, fill or page load
WAIT_TIMEOUT = 45.0  # seconds for the cluster to finish tasks, the server to answer
COMMAND_TIMEOUT = 60.0  # one management command
STOP_TIMEOUT = 20.0
MARKER = "TOUR_JSON "

USERNAME = PASSWORD = "admin"
EXAMPLE_SCHEDULE = "example: hourly word count"
CRON_SCHEDULE = "nightly report"
FLAKY_TASK = "deliver order 1042"

# Added to the copy of the example project: fails until warehouse.open exists.
WAREHOUSE = '''"""A task that fails while the warehouse is closed (added by the browser tour)."""

from pathlib import Path

OPEN = Path(__file__).with_name("warehouse.open")


def deliver(order: int) -> str:
    if not OPEN.exists():
        raise ConnectionError(f"order {order}: the warehouse did not answer")
    return f"order {order} delivered"
'''

SETUP = """
import io, json
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils.dateparse import parse_datetime
from taskq.tasks import async_task, schedule

User = get_user_model()
if not User.objects.filter(username={username!r}).exists():
    User.objects.create_superuser({username!r}, "admin@example.com", {password!r})
out = io.StringIO()
call_command("enqueue_examples", stdout=out)
words = [line.split() for line in out.getvalue().splitlines()]
ids = {{w[0]: w[1] for w in words if len(w) == 2 and len(w[1]) == 32}}  # "label task_id"
ids["order_total"] = async_task("shop.tasks.add", 19.5, 23, task_name="order total")
ids["tags"] = async_task(
    "shop.tasks.count_words", "red shoes, blue shoes, red hat", task_name="count tags"
)
ids["bad_sum"] = async_task("shop.tasks.add", 1, "two", task_name="add a number and text")
ids["deliver"] = async_task("warehouse.deliver", 1042, task_name={flaky!r})
delayed = async_task(
    "shop.tasks.slow", 2, task_name="restock reminder",
    run_after=parse_datetime({later!r}), priority=5,
)
cron = schedule(
    "shop.tasks.count_words", "orders shipped, orders returned", name={cron!r},
    schedule_type="C", cron="0 3 * * *", next_run=parse_datetime({tomorrow!r}),
)
print({marker!r} + json.dumps({{"ids": ids, "delayed": delayed, "cron": cron.pk}}))
"""

STATE = """
import json
from taskq.models import Cluster, Task
ids = json.loads({ids!r})
print({marker!r} + json.dumps({{
    "finished": Task.objects.filter(id__in=ids).count(),
    "example_runs": Task.objects.filter(group={example!r}).count(),
    "cron_runs": Task.objects.filter(group={cron!r}).count(),
    "clusters": list(Cluster.objects.values("id", "host", "pid", "state")),
}}))
"""


class TourFailed(Exception):
    """A check of the tour failed: the message says what was expected and what was seen."""


class OutOfTime(Exception):
    """The whole tour took longer than ``--timeout``."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise TourFailed(message)


def wait_until(what: str, probe: Callable[[], Any], timeout: float = WAIT_TIMEOUT) -> Any:
    """Call ``probe`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TourFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _end_with_parent() -> None:
    """In a child (Linux): get SIGTERM if the tour dies without stopping it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Project:
    """A copy of the example project on a database of its own, and its two servers."""

    def __init__(self, workdir: Path, logdir: Path) -> None:
        self.dir = workdir / "example_project"
        self.logdir = logdir
        ignore = shutil.ignore_patterns("db.sqlite3*", "__pycache__")
        shutil.copytree(EXAMPLE, self.dir, ignore=ignore)
        (self.dir / "warehouse.py").write_text(WAREHOUSE)
        self.env = {
            **os.environ,
            "EXAMPLE_DB": str(workdir / "db.sqlite3"),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.env.pop("PYTHONPATH", None)  # taskq as installed, not the checkout
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def manage(self, *args: str) -> str:
        """Run one management command; its output, or fail with its error."""
        command = [sys.executable, "manage.py", *args]
        try:
            done = subprocess.run(
                command,
                cwd=self.dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise TourFailed(f"manage.py {args[0]} took over {COMMAND_TIMEOUT:.0f} s") from exc
        if done.returncode:
            raise TourFailed(f"manage.py {args[0]} exited {done.returncode}:\n{done.stderr}")
        return done.stdout

    def shell(self, code: str) -> dict[str, Any]:
        """Run Python in ``manage.py shell``; the JSON it printed after ``MARKER``."""
        out = self.manage("shell", "--verbosity", "0", "--command", code)
        for line in out.splitlines():
            if line.startswith(MARKER):
                return json.loads(line[len(MARKER) :])
        raise TourFailed(f"manage.py shell printed no result:\n{out}")

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start a server in a process group of its own, its output in ``LOGDIR/NAME.log``."""
        with open(self.logdir / f"{name}.log", "wb") as log:
            self.children[name] = subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=self.dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_end_with_parent if sys.platform == "linux" else None,
            )
        return self.children[name]

    def check_running(self) -> None:
        for name, proc in self.children.items():
            check(proc.poll() is None, f"{name} exited early with status {proc.returncode}")

    def stop(self) -> None:
        """SIGTERM each server (qcluster stops gracefully), then kill what is left."""
        for proc in self.children.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, proc in self.children.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop within {STOP_TIMEOUT:.0f} s: killing it")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # its group: workers left behind too
            proc.wait()

    def log_tails(self, lines: int = 30) -> str:
        parts = []
        for name in self.children:
            path = self.logdir / f"{name}.log"
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            parts.append(f"--- last lines of {path} ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)


class Tour:
    """The browser's walk through the admin, one screenshot per page."""

    def __init__(self, page: Any, base: str, out: Path, log: Callable[[str], None]) -> None:
        self.page = page
        self.base = base
        self.out = out
        self.log = log
        self.shots: list[Path] = []

    # -- helpers -------------------------------------------------------------------------

    def open(self, path: str) -> None:
        response = self.page.goto(self.base + path)
        status = response.status if response else None
        check(status == 200, f"GET {path} answered HTTP {status}, expected 200")

    def shot(self, name: str) -> None:
        """The whole page down to the end of its content (not the empty rest of the window)."""
        path = self.out / f"{len(self.shots) + 1:02d}-{name}.png"
        bottom = self.page.evaluate(CONTENT_BOTTOM)
        clip = {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": bottom + 24}
        self.page.screenshot(path=str(path), full_page=True, clip=clip, animations="disabled")
        self.shots.append(path)
        self.log(f"  saved {path.name}")

    def text(self, selector: str) -> str:
        locator = self.page.locator(selector)
        check(locator.count() > 0, f"{self.page.url}: nothing matches {selector!r}")
        return locator.first.text_content() or ""  # as written, not as styled

    def expect_text(self, selector: str, *needles: str) -> None:
        text = self.text(selector)
        for needle in needles:
            check(needle in text, f"{self.page.url}: {selector!r} shows {text!r}, not {needle!r}")

    def follow(self, link: Any, url: str) -> None:
        """Click ``link`` and wait for the page at ``url`` (a glob) to load."""
        check(link.count() == 1, f"{self.page.url}: no link to {url}")
        link.click()
        self.page.wait_for_url(url)

    def row(self, pk: Any) -> Any:
        """The changelist row whose checkbox selects ``pk``."""
        checkbox = self.page.locator(f'input.action-select[value="{pk}"]')  # inside the row
        return self.page.locator("#result_list tbody tr").filter(has=checkbox)

    def has_row(self, pk: Any) -> bool:
        return self.row(pk).count() == 1

    def run_action(self, pk: Any, action: str) -> str:
        """Select row ``pk``, run ``action``; the message it showed (fail on an error)."""
        check(self.has_row(pk), f"{self.page.url}: no row for {pk}")
        self.row(pk).locator("input.action-select").check()
        self.page.select_option('select[name="action"]', action)
        self.page.click('#changelist-form button[name="index"]')
        self.page.wait_for_selector(".messagelist li")  # on the page the action redirects to
        errors = self.page.locator(".messagelist li.error, .messagelist li.warning")
        check(errors.count() == 0, f"{action}: the admin answered {errors.all_inner_texts()}")
        return self.text(".messagelist li")

    # -- the tour --------------------------------------------------------------------------

    def login(self) -> None:
        self.open("/admin/login/?next=/admin/django_q/")
        self.page.fill("#id_username", USERNAME)
        self.page.fill("#id_password", PASSWORD)
        with self.page.expect_navigation():
            self.page.click('#login-form [type="submit"]')
        check(
            self.page.url == self.base + "/admin/django_q/",
            f"logging in as {USERNAME} led to {self.page.url}, not the app index",
        )

    def app_index(self) -> None:
        self.open("/admin/django_q/")
        self.expect_text("#content-main", "Task queue")
        links = {
            "Clusters": "/admin/django_q/cluster/",
            "Failed tasks": "/admin/django_q/failure/",
            "Queued tasks": "/admin/django_q/ormq/",
            "Scheduled tasks": "/admin/django_q/schedule/",
            "Successful tasks": "/admin/django_q/success/",
        }
        for name, href in links.items():
            link = self.page.locator(f'#content-main th a[href="{href}"]')
            check(link.count() == 1, f"the app index has no link to {href}")
            check(link.inner_text() == name, f"{href} is linked as {link.inner_text()!r}")
        self.shot("app-index")

    def successes(self, ids: dict[str, str]) -> None:
        self.open("/admin/django_q/success/")
        for label in ("add", "slow", "count_words", "order_total", "tags"):
            check(self.has_row(ids[label]), f"successful tasks: no row for {label} {ids[label]}")
        self.shot("successful-tasks")
        self.open(f"/admin/django_q/success/{ids['order_total']}/change/")
        self.expect_text(".field-name", "order total")
        self.expect_text(".field-func", "shop.tasks.add")
        self.expect_text(".field-outcome pre", "42.5")
        self.shot("successful-task")

    def failures(self, ids: dict[str, str]) -> None:
        self.open("/admin/django_q/failure/")
        for label in ("fail", "bad_sum", "deliver"):
            check(self.has_row(ids[label]), f"failed tasks: no row for {label} {ids[label]}")
        self.expect_text(
            f'#result_list tr:has(input[value="{ids["fail"]}"]) .field-error',
            "this task always fails",
        )
        self.shot("failed-tasks")
        self.open(f"/admin/django_q/failure/{ids['fail']}/change/")
        self.expect_text(".field-error", "this task always fails")
        self.expect_text(
            ".field-traceback pre",
            "Traceback (most recent call last):",
            "ValueError: this task always fails",
        )
        self.shot("failed-task")

    def schedules(self, cron_pk: int) -> None:
        self.open("/admin/django_q/schedule/")
        links = self.page.locator("#result_list .field-name a")
        names = links.all_inner_texts()
        for name in (EXAMPLE_SCHEDULE, CRON_SCHEDULE):
            check(name in names, f"scheduled tasks: no {name!r} among {names}")
        example = self.page.locator("#result_list tbody tr").filter(has_text=EXAMPLE_SCHEDULE)
        check(
            example.locator(".field-last_run a").count() == 1,
            f"{EXAMPLE_SCHEDULE!r} shows no last run",
        )
        self.shot("scheduled-tasks")
        self.open(f"/admin/django_q/schedule/{cron_pk}/change/")
        for field, value in (
            ("name", CRON_SCHEDULE),
            ("func", "shop.tasks.count_words"),
            ("cron", "0 3 * * *"),
        ):
            seen = self.page.input_value(f"#id_{field}")
            check(seen == value, f"the schedule form shows {field} {seen!r}, not {value!r}")
        self.shot("schedule-form")

    def queue(self, delayed: str) -> None:
        self.open("/admin/django_q/ormq/")
        rows = self.page.locator("#result_list tbody tr").filter(has_text=delayed)
        check(rows.count() == 1, f"queued tasks: no row for the delayed task {delayed}")
        self.shot("queued-tasks")
        self.follow(rows.locator("th a").first, "**/admin/django_q/ormq/*/change/")
        self.expect_text(".field-name", "restock reminder")
        self.expect_text(".field-func", "shop.tasks.slow")
        self.shot("queued-task")

    def clusters(self, cluster: dict[str, Any]) -> None:
        self.open("/admin/django_q/cluster/")
        row = f"#cluster-{cluster['id']}"
        check(
            self.page.locator(row).count() == 1,
            f"the clusters page has no row for the running cluster {cluster['id']}",
        )
        cells = self.page.locator(f"{row} td").all_inner_texts()
        for what in ("host", "pid"):
            check(
                str(cluster[what]) in cells,
                f"the clusters page shows {cells}, without the {what} {cluster[what]}",
            )
        self.expect_text(f"{row} .health", "ok")
        self.expect_text("#queue-example", "example")
        self.shot("clusters")

    def resubmit(self, task_id: str, open_warehouse: Callable[[], None]) -> None:
        open_warehouse()  # from now on the task succeeds
        self.open("/admin/django_q/failure/")
        message = self.run_action(task_id, "resubmit")
        check(message == "Resubmitted 1 task.", f"resubmitting said {message!r}")
        self.shot("failed-tasks-resubmitted")

        def succeeded() -> bool:
            response = self.page.goto(f"{self.base}/admin/django_q/success/{task_id}/change/")
            return response is not None and response.status == 200

        wait_until(f"the resubmitted task {task_id} to become a successful task", succeeded)
        self.expect_text(".field-name", FLAKY_TASK)
        self.expect_text(".field-outcome pre", "order 1042 delivered")
        self.shot("resubmitted-task")
        self.open("/admin/django_q/failure/")
        check(not self.has_row(task_id), f"{task_id} is still listed as a failed task")

    def run_now(self, cron_pk: int, runs: Callable[[], int]) -> None:
        before = runs()
        self.open("/admin/django_q/schedule/")
        check(
            self.row(cron_pk).locator(".field-last_run a").count() == 0,
            f"{CRON_SCHEDULE!r} shows a last run before it ran",
        )
        message = self.run_action(cron_pk, "run_now")
        check(message == "Enqueued 1 scheduled task.", f"run now said {message!r}")
        self.shot("scheduled-tasks-run-now")

        def ran() -> bool:
            self.open("/admin/django_q/schedule/")
            row = self.row(cron_pk)
            return row.locator(".field-last_run a").count() == 1 and (
                row.locator('.field-success img[alt="True"]').count() == 1
            )

        wait_until(f"{CRON_SCHEDULE!r} to show a successful last run", ran)
        check(runs() == before + 1, f"run now: {runs() - before} tasks ran, not 1")
        self.shot("scheduled-tasks-ran")
        self.follow(self.row(cron_pk).locator(".field-last_run a"), "**/success/*/change/")
        self.expect_text(".field-group", CRON_SCHEDULE)
        self.expect_text(".field-outcome pre", "'orders': 2")


def launch(playwright: Any, chromium: str, profile: Path) -> Any:
    """A headless Chromium context on a new profile."""
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=chromium,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport=VIEWPORT,
        device_scale_factor=1,
        color_scheme="light",
        locale="en-US",
        timezone_id="UTC",
        timeout=30_000,
    )
    context.add_init_script(CLOSED_SIDEBAR)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(ACTION_TIMEOUT_MS)
    return context


def page_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise OutOfTime in the main thread if the block runs longer than ``seconds``."""

    def expired(signum: int, frame: Any) -> None:
        raise OutOfTime(f"the tour took over {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def tour(args: argparse.Namespace, out: Path, workdir: Path) -> None:
    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {text}", flush=True)

    from playwright.sync_api import sync_playwright

    project = Project(workdir, out)
    page = None
    try:
        log("migrating a new database and enqueueing the example tasks")
        project.manage("migrate", "--noinput")
        now = datetime.now(UTC)
        tomorrow = (now + timedelta(days=1)).replace(hour=3, minute=0, second=0, microsecond=0)
        setup = project.shell(
            SETUP.format(
                username=USERNAME,
                password=PASSWORD,
                flaky=FLAKY_TASK,
                cron=CRON_SCHEDULE,
                later=(now + timedelta(hours=1)).isoformat(),
                tomorrow=tomorrow.isoformat(),
                marker=MARKER,
            )
        )
        ids: dict[str, str] = setup["ids"]
        log(f"enqueued {len(ids)} tasks, 1 delayed; added the schedule {CRON_SCHEDULE!r}")

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        qcluster = project.start("qcluster", "qcluster")
        project.start("runserver", "runserver", "--noreload", f"127.0.0.1:{port}")
        log(f"started qcluster (pid {qcluster.pid}) and runserver on {base}")

        state_code = STATE.format(
            ids=json.dumps(list(ids.values())),
            example=EXAMPLE_SCHEDULE,
            cron=CRON_SCHEDULE,
            marker=MARKER,
        )

        def state() -> dict[str, Any]:
            project.check_running()
            return project.shell(state_code)

        def ours(cluster: dict[str, Any]) -> bool:
            """Run by the qcluster started here: its process, or one of its group."""
            try:
                return cluster["pid"] == qcluster.pid or os.getpgid(cluster["pid"]) == qcluster.pid
            except ProcessLookupError:
                return False

        def ready() -> dict[str, Any] | None:
            seen = state()
            running = [c for c in seen["clusters"] if ours(c) and c["state"] == "running"]
            done = seen["finished"] == len(ids) and seen["example_runs"] >= 1
            return running[0] if running and done else None

        def serving() -> bool:
            project.check_running()
            return page_answers(base + "/admin/login/")

        wait_until(f"{base}/admin/login/ to answer", serving)
        cluster = wait_until("the cluster to run the tasks and the example schedule", ready)
        log(f"the cluster {cluster['id']} on {cluster['host']}:{cluster['pid']} ran them")

        with sync_playwright() as playwright:
            context = launch(playwright, args.chromium, workdir / "chromium-profile")
            try:
                page = context.pages[0] if context.pages else context.new_page()
                walk = Tour(page, base, out, log)
                steps: list[tuple[str, Callable[[], None]]] = [
                    ("log in as admin", walk.login),
                    ("app index", walk.app_index),
                    ("successful tasks", lambda: walk.successes(ids)),
                    ("failed tasks", lambda: walk.failures(ids)),
                    ("scheduled tasks", lambda: walk.schedules(setup["cron"])),
                    ("queued tasks", lambda: walk.queue(setup["delayed"])),
                    ("clusters", lambda: walk.clusters(cluster)),
                    (
                        "resubmit a failed task",
                        lambda: walk.resubmit(
                            ids["deliver"], (project.dir / "warehouse.open").touch
                        ),
                    ),
                    (
                        "run a schedule now",
                        lambda: walk.run_now(setup["cron"], lambda: state()["cron_runs"]),
                    ),
                ]
                for name, step in steps:
                    log(name)
                    try:
                        step()
                    except TourFailed as exc:
                        raise TourFailed(f"{name}: {exc}") from None
                    except Exception as exc:
                        raise TourFailed(f"{name}: {type(exc).__name__}: {exc}") from exc
                log(f"all {len(steps)} steps passed; {len(walk.shots)} screenshots")
            except BaseException:
                with contextlib.suppress(Exception):
                    if page is not None:
                        page.screenshot(path=str(out / "FAILED.png"), full_page=True)
                        print(f"the page at the failure ({page.url}): {out / 'FAILED.png'}")
                raise
            finally:
                with contextlib.suppress(Exception):
                    context.close()
    except BaseException:
        print(project.log_tails(), file=sys.stderr)
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)  # stopping the servers is not cut short
        project.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for the screenshots (default: a new one)")
    parser.add_argument(
        "--chromium",
        default=os.environ.get("TASKQ_CHROMIUM", DEFAULT_CHROMIUM),
        help=f"the Chromium binary (default: $TASKQ_CHROMIUM or {DEFAULT_CHROMIUM})",
    )
    parser.add_argument(
        "--timeout", type=float, default=150.0, help="seconds for the whole tour (default 150)"
    )
    args = parser.parse_args(argv)
    if not os.access(args.chromium, os.X_OK):
        print(
            f"browser tour: no Chromium at {args.chromium}; on Debian: apt-get install chromium",
            file=sys.stderr,
        )
        return 1
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        out = args.out.resolve()
    else:
        out = Path(tempfile.mkdtemp(prefix="taskq-admin-screenshots-"))
    print(f"screenshots go to {out}", flush=True)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="taskq-browser-"))
    try:
        with time_limit(args.timeout):
            tour(args, out, workdir)
    except (TourFailed, OutOfTime) as exc:
        print(f"browser tour FAILED: {exc}", file=sys.stderr)
        print(f"screenshots and logs so far: {out}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print(f"browser tour FAILED (an error above); screenshots and logs: {out}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"browser tour passed in {time.monotonic() - started:.0f} s; screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
