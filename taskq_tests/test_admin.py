"""The admin: every page, every action, and model permissions, through Django's test client."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from taskq.brokers import get_broker
from taskq.conf import get_config
from taskq.enqueue import run_sync
from taskq.models import Cluster, Failure, OrmQ, Schedule, Success, Task
from taskq.tasks import async_task

pytestmark = pytest.mark.django_db(transaction=True)

FLAKY = {"fail": True}


def flaky(value: int) -> int:
    """Fails while ``FLAKY["fail"]`` is set: a task that a resubmit can fix."""
    if FLAKY["fail"]:
        raise ValueError("flaky for now")
    return value * 2


@pytest.fixture(autouse=True)
def _reset_flaky() -> None:
    FLAKY["fail"] = True


def login(*perms: str, superuser: bool = False) -> Client:
    user = User.objects.create_user("u", password="x", is_staff=True, is_superuser=superuser)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client() -> Client:
    return login(superuser=True)


def make_success() -> Success:
    task_id = async_task(
        "taskq_tests.jobs.echo", 1, "two", sync=True, group="g", x={"y": 3}, task_name="good"
    )
    return Success.objects.get(id=task_id)


def make_failure(func: str = "taskq_tests.jobs.fail", *args: Any, **kwargs: Any) -> Failure:
    with pytest.raises(ValueError):  # noqa: PT011 - the task's own error, re-raised by sync mode
        async_task(func, *args, sync=True, task_name="bad", group="g", **kwargs)
    return Failure.objects.get(name="bad")


def heartbeat(cluster_id: str, **status: Any) -> None:
    get_broker().heartbeat(
        {
            "id": cluster_id,
            "name": "tests",
            "host": "web-1",
            "pid": 4242,
            "state": "running",
            "started": timezone.now() - timedelta(hours=2),
            **status,
        }
    )


def act(client: Client, model: str, action: str, *ids: Any, **data: Any) -> Any:
    url = reverse(f"admin:django_q_{model}_changelist")
    return client.post(url, {"action": action, "_selected_action": list(ids), **data}, follow=True)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def action_names(response: Any) -> set[str]:
    form = response.context["action_form"]  # None when no action is offered
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


def all_urls() -> list[str]:
    """One URL for every page the app has, with data behind each."""
    success, failure = make_success(), make_failure()
    schedule = Schedule.objects.create(func="taskq_tests.jobs.add", args="1, 2")
    async_task("taskq_tests.jobs.add", 1, 2)
    queued = OrmQ.objects.get()
    heartbeat("c1")
    return [
        reverse("admin:app_list", args=("django_q",)),
        reverse("admin:django_q_success_changelist"),
        reverse("admin:django_q_success_change", args=(success.id,)),
        reverse("admin:django_q_failure_changelist"),
        reverse("admin:django_q_failure_change", args=(failure.id,)),
        reverse("admin:django_q_schedule_changelist"),
        reverse("admin:django_q_schedule_add"),
        reverse("admin:django_q_schedule_change", args=(schedule.pk,)),
        reverse("admin:django_q_ormq_changelist"),
        reverse("admin:django_q_ormq_change", args=(queued.pk,)),
        reverse("admin:django_q_cluster_changelist"),
    ]


# Pages and permissions ---------------------------------------------------------------------


def test_admin_superuser_sees_every_page(admin_client: Client) -> None:
    for url in all_urls():
        assert admin_client.get(url).status_code == 200, url


def test_admin_app_index_is_titled_by_the_label_and_links_clusters(admin_client: Client) -> None:
    url = reverse("admin:app_list", args=("django_q",))
    page = admin_client.get(url).content.decode()
    assert "Django Q" in page
    assert f'<a href="{reverse("admin:django_q_cluster_changelist")}">Clusters</a>' in page
    for name in ("Successful tasks", "Failed tasks", "Scheduled tasks", "Queued tasks"):
        assert name in page
    with override_settings(Q_CLUSTER={"name": "tests", "label": "Background jobs"}):
        assert "Background jobs" in admin_client.get(url).content.decode()


def test_admin_staff_without_permissions_sees_nothing() -> None:
    urls = all_urls()
    client = login()
    for url in urls[1:]:
        assert client.get(url).status_code == 403, url
    assert client.get(urls[0]).status_code == 404  # the app index of an app one may not see
    assert "django_q" not in client.get(reverse("admin:index")).content.decode()


def test_admin_view_permission_on_successes_shows_only_them() -> None:
    urls = all_urls()
    client = login("django_q.view_success")
    allowed = [u for u in urls if "/success/" in u]
    for url in urls[1:]:
        assert client.get(url).status_code == (200 if url in allowed else 403), url
    index = client.get(urls[0]).content.decode()
    assert "Successful tasks" in index
    assert "Failed tasks" not in index
    assert "Clusters" not in index
    assert action_names(client.get(urls[1])) == set()


def test_admin_cluster_view_permission_shows_the_clusters_link() -> None:
    heartbeat("c1")
    client = login("django_q.view_cluster")
    index = client.get(reverse("admin:app_list", args=("django_q",))).content.decode()
    assert f'<a href="{reverse("admin:django_q_cluster_changelist")}">Clusters</a>' in index
    page = client.get(reverse("admin:django_q_cluster_changelist"))
    assert page.status_code == 200
    assert page.context["queue_url"] is None  # no view permission on the queue


# Successful and failed tasks ------------------------------------------------------------


def test_admin_success_list_search_filters_and_detail(admin_client: Client) -> None:
    success = make_success()
    url = reverse("admin:django_q_success_changelist")
    page = admin_client.get(url)
    assert list(page.context["cl"].result_list) == [success]
    for column in ("Name", "Func", "Started", "Stopped", "Time taken", "Group", "Cluster"):
        assert f">{column}</" in page.content.decode()
    for query in ("good", "jobs.echo", "g", success.id):
        assert admin_client.get(url, {"q": query}).context["cl"].result_count == 1, query
    assert admin_client.get(url, {"q": "nothing"}).context["cl"].result_count == 0
    assert admin_client.get(url, {"group": "g"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"cluster": "other"}).context["cl"].result_count == 0
    day = success.stopped
    dated = {"stopped__year": day.year, "stopped__month": day.month, "stopped__day": day.day}
    assert admin_client.get(url, dated).context["cl"].result_count == 1
    assert admin_client.get(url, {"o": "-5"}).context["cl"].result_count == 1  # by time taken
    detail = admin_client.get(reverse("admin:django_q_success_change", args=(success.id,)))
    html = detail.content.decode()
    assert '<pre class="taskq-pre">(1, &#x27;two&#x27;)</pre>' in html
    assert "{&#x27;x&#x27;: {&#x27;y&#x27;: 3}}" in html  # kwargs and the result
    assert 'name="_save"' not in html  # read-only
    assert admin_client.get(reverse("admin:django_q_success_add")).status_code == 403


def test_admin_failure_detail_shows_error_traceback_and_attempts(admin_client: Client) -> None:
    failure = make_failure("taskq_tests.jobs.fail", "kaput")
    page = admin_client.get(reverse("admin:django_q_failure_changelist")).content.decode()
    assert "kaput" in page
    assert ">Attempt count</" in page
    html = admin_client.get(reverse("admin:django_q_failure_change", args=(failure.id,)))
    html = html.content.decode()
    assert '<pre class="taskq-pre">Traceback (most recent call last):' in html
    assert "ValueError: kaput" in html
    assert 'name="_save"' not in html


def test_admin_resubmit_enqueues_under_the_same_id_and_success_replaces_failure(
    admin_client: Client,
) -> None:
    failure = make_failure("taskq_tests.test_admin.flaky", 21, hook="taskq_tests.jobs.hook")
    response = act(admin_client, "failure", "resubmit", failure.id)
    assert messages_of(response) == ["Resubmitted 1 task."]
    queued = OrmQ.objects.get()
    assert queued.task_id() == failure.id
    assert queued.name() == "bad"
    assert queued.task["args"] == (21,)
    assert queued.task["group"] == "g"
    assert queued.task["hook"] == "taskq_tests.jobs.hook"
    assert Failure.objects.filter(id=failure.id).exists()  # it stays until the retry ends

    again = act(admin_client, "failure", "resubmit", failure.id)
    assert messages_of(again) == ["bad is already queued."]
    assert OrmQ.objects.count() == 1

    FLAKY["fail"] = False
    run_sync(queued.task, get_broker(), get_config())
    assert not Failure.objects.filter(id=failure.id).exists()
    success = Success.objects.get(id=failure.id)
    assert success.result == 42
    assert success.name == "bad"
    assert Task.objects.count() == 1


def test_admin_resubmit_refuses_a_func_that_no_longer_imports(admin_client: Client) -> None:
    failure = make_failure()
    Task.objects.filter(id=failure.id).update(func="taskq_tests.jobs.gone")
    response = act(admin_client, "failure", "resubmit", failure.id)
    (text,) = messages_of(response)
    assert text.startswith("bad was not resubmitted:")
    assert "taskq_tests.jobs.gone" in text
    assert OrmQ.objects.count() == 0


def test_admin_resubmit_in_sync_mode_runs_the_task_here(admin_client: Client) -> None:
    failure = make_failure("taskq_tests.test_admin.flaky", 5)
    with override_settings(Q_CLUSTER={"name": "tests", "sync": True}):
        failed = act(admin_client, "failure", "resubmit", failure.id)
        assert messages_of(failed) == ["bad ran again and failed: flaky for now"]
        assert Failure.objects.get(id=failure.id).attempt_count == 1
        FLAKY["fail"] = False
        assert messages_of(act(admin_client, "failure", "resubmit", failure.id)) == [
            "Resubmitted 1 task."
        ]
    assert Success.objects.get(id=failure.id).result == 10


def test_admin_resubmit_needs_the_change_permission() -> None:
    make_failure()
    url = reverse("admin:django_q_failure_changelist")
    viewer = login("django_q.view_failure", "django_q.delete_failure")
    assert action_names(viewer.get(url)) == {"delete_selected"}
    User.objects.all().delete()
    changer = login("django_q.view_failure", "django_q.change_failure")
    assert action_names(changer.get(url)) == {"resubmit"}


def test_admin_delete_failures(admin_client: Client) -> None:
    failure = make_failure()
    response = act(admin_client, "failure", "delete_selected", failure.id, post="yes")
    assert messages_of(response) == ["Successfully deleted 1 Failed task."]
    assert not Task.objects.exists()


# Scheduled tasks -------------------------------------------------------------------------


def schedule_form(**values: Any) -> dict[str, Any]:
    data = {
        "name": "",
        "func": "taskq_tests.jobs.add",
        "hook": "",
        "args": "1, 2",
        "kwargs": "",
        "schedule_type": "D",
        "minutes": "",
        "repeats": "-1",
        "next_run_0": "2030-01-02",
        "next_run_1": "03:04:05",
        "cron": "",
        "cluster": "",
        "intended_date_kwarg": "",
    }
    data.update(values)
    return data


def test_admin_schedule_add_saves_a_valid_schedule(admin_client: Client) -> None:
    response = admin_client.post(reverse("admin:django_q_schedule_add"), schedule_form(name="s"))
    assert response.status_code == 302
    row = Schedule.objects.get()
    assert (row.name, row.args, row.schedule_type) == ("s", "1, 2", "D")
    assert row.next_run.isoformat() == "2030-01-02T03:04:05+00:00"


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"cron": "61 * * * *"}, "cron", ""),
        ({"args": "open('x')"}, "args", ""),
        ({"kwargs": "x=y"}, "kwargs", ""),
        ({"schedule_type": "I"}, "minutes", ""),
        ({"func": "taskq_tests.jobs.gone"}, "func", "does not import to a callable"),
        ({"hook": "taskq_tests.jobs.not_callable"}, "hook", "does not import to a callable"),
        ({"intended_date_kwarg": "not a name"}, "intended_date_kwarg", "valid keyword"),
    ],
)
def test_admin_schedule_form_shows_errors_on_the_field(
    admin_client: Client, values: dict[str, str], field: str, message: str
) -> None:
    response = admin_client.post(reverse("admin:django_q_schedule_add"), schedule_form(**values))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field]
    assert len(errors[field]) == 1  # a validator and the model's clean() do not repeat it
    assert message in errors[field][0]
    assert '<ul class="errorlist' in response.content.decode()
    assert not Schedule.objects.exists()


def test_admin_schedule_edit_with_empty_next_run_pauses(admin_client: Client) -> None:
    row = Schedule.objects.create(func="taskq_tests.jobs.add", args="1, 2", schedule_type="D")
    url = reverse("admin:django_q_schedule_change", args=(row.pk,))
    response = admin_client.post(url, schedule_form(next_run_0="", next_run_1=""))
    assert response.status_code == 302
    assert Schedule.objects.get().next_run is None


def test_admin_schedule_run_now_keeps_next_run_and_links_the_last_run(
    admin_client: Client,
) -> None:
    later = timezone.now() + timedelta(days=3)
    row = Schedule.objects.create(
        func="taskq_tests.jobs.add",
        args="1, 2",
        schedule_type="D",
        next_run=later,
        repeats=5,
        name="nightly",
    )
    response = act(admin_client, "schedule", "run_now", row.pk)
    assert messages_of(response) == ["Enqueued 1 scheduled task."]
    row.refresh_from_db()
    assert (row.next_run, row.repeats) == (later, 5)
    queued = OrmQ.objects.get()
    assert queued.task_id() == row.task
    assert queued.task["group"] == "nightly"

    run_sync(queued.task, get_broker(), get_config())
    page = admin_client.get(reverse("admin:django_q_schedule_changelist")).content.decode()
    task = Success.objects.get(id=row.task)
    assert f'<a href="{reverse("admin:django_q_success_change", args=(task.id,))}">' in page
    assert f"[{task.name}]" in page


def test_admin_schedule_run_now_reports_a_broken_schedule(admin_client: Client) -> None:
    row = Schedule.objects.create(func="taskq_tests.jobs.gone", name="broken")
    (text,) = messages_of(act(admin_client, "schedule", "run_now", row.pk))
    assert text.startswith("broken did not run:")
    assert not OrmQ.objects.exists()


def test_admin_schedule_pause_and_resume(admin_client: Client) -> None:
    later = timezone.now() + timedelta(days=1)
    daily = Schedule.objects.create(func="taskq_tests.jobs.add", schedule_type="D", next_run=later)
    cron = Schedule.objects.create(func="taskq_tests.jobs.add", cron="0 4 * * *")
    url = reverse("admin:django_q_schedule_changelist")
    assert messages_of(act(admin_client, "schedule", "pause", daily.pk, cron.pk)) == [
        "Paused 2 schedules."
    ]
    assert list(Schedule.objects.values_list("next_run", flat=True)) == [None, None]
    assert not Schedule.objects.due(timezone.now() + timedelta(days=400)).exists()
    assert admin_client.get(url, {"state": "paused"}).context["cl"].result_count == 2
    assert admin_client.get(url, {"state": "active"}).context["cl"].result_count == 0

    before = timezone.now()
    assert messages_of(act(admin_client, "schedule", "resume", daily.pk, cron.pk)) == [
        "Resumed 2 schedules."
    ]
    daily.refresh_from_db()
    cron.refresh_from_db()
    # back on its timetable: the next daily slot of its anchor after now
    assert daily.next_run == later or daily.next_run == later - timedelta(days=1)
    assert daily.next_run > before
    assert cron.next_run > before
    assert (cron.next_run.hour, cron.next_run.minute) == (4, 0)
    assert admin_client.get(url, {"state": "active"}).context["cl"].result_count == 2
    assert messages_of(act(admin_client, "schedule", "resume", daily.pk)) == [
        "Resumed 0 schedules."
    ]  # an active schedule keeps its next run


def test_admin_schedule_actions_need_the_change_permission() -> None:
    Schedule.objects.create(func="taskq_tests.jobs.add")
    client = login("django_q.view_schedule")
    assert action_names(client.get(reverse("admin:django_q_schedule_changelist"))) == set()


# Queued tasks ------------------------------------------------------------------------------


def test_admin_queue_lists_and_shows_queued_tasks(admin_client: Client) -> None:
    task_id = async_task("taskq_tests.jobs.echo", 7, task_name="waiting", priority=3, k="v")
    heartbeat("c1")
    row = OrmQ.objects.get()
    get_broker().claim("c1", 1)
    url = reverse("admin:django_q_ormq_changelist")
    page = admin_client.get(url).content.decode()
    for text in (task_id, "waiting", "taskq_tests.jobs.echo", ">Not before</", ">Held by</"):
        assert text in page
    assert f"{reverse('admin:django_q_cluster_changelist')}#cluster-c1" in page
    assert admin_client.get(url, {"held": "yes"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"held": "no"}).context["cl"].result_count == 0
    assert admin_client.get(url, {"q": task_id}).context["cl"].result_count == 1
    detail = admin_client.get(reverse("admin:django_q_ormq_change", args=(row.pk,)))
    html = detail.content.decode()
    assert '<pre class="taskq-pre">(7,)</pre>' in html
    assert "{&#x27;k&#x27;: &#x27;v&#x27;}" in html
    assert "&#x27;priority&#x27;: 3" in html
    assert 'name="_save"' not in html
    assert admin_client.get(reverse("admin:django_q_ormq_add")).status_code == 403


def test_admin_queue_survives_an_unreadable_payload(admin_client: Client) -> None:
    row = OrmQ.objects.create(key="tests", payload="not a signed package")
    assert row.task_id().startswith("*")
    page = admin_client.get(reverse("admin:django_q_ormq_changelist"))
    assert row.task_id() in page.content.decode()
    detail = admin_client.get(reverse("admin:django_q_ormq_change", args=(row.pk,)))
    assert detail.status_code == 200
    assert "error" in detail.content.decode()


def test_admin_queue_delete_cancels_a_task(admin_client: Client) -> None:
    keep = async_task("taskq_tests.jobs.add", 1, 1)
    async_task("taskq_tests.jobs.add", 2, 2)
    first, second = OrmQ.objects.order_by("id")
    response = act(admin_client, "ormq", "delete_selected", second.pk, post="yes")
    assert messages_of(response) == ["Successfully deleted 1 Queued task."]
    delete_url = reverse("admin:django_q_ormq_delete", args=(first.pk,))
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 302
    assert not OrmQ.objects.exists()
    assert get_broker().claim("c1", 5) == []
    assert keep  # both were cancelled before any cluster saw them


# Clusters ----------------------------------------------------------------------------------


def test_admin_clusters_page_shows_health_workers_and_queues(admin_client: Client) -> None:
    since = (timezone.now() - timedelta(seconds=90)).isoformat()
    heartbeat(
        "alive",
        held=1,
        processed=17,
        failed=3,
        workers=[
            {"pid": 101, "task_id": "abc", "task_name": "busy-task", "since": since},
            {"pid": 102, "task_id": None, "task_name": None, "since": None},
        ],
    )
    heartbeat("slow", host="web-2")
    heartbeat("gone", host="web-3")
    async_task("taskq_tests.jobs.add", 1, 1)
    async_task("taskq_tests.jobs.add", 1, 1, run_after=timedelta(hours=1))
    now = timezone.now()
    Cluster.objects.filter(id="slow").update(heartbeat=now - timedelta(seconds=20))
    Cluster.objects.filter(id="gone").update(heartbeat=now - timedelta(seconds=600))
    OrmQ.objects.filter(lock__lte=now).update(lock=now - timedelta(minutes=5))
    async_task("taskq_tests.jobs.add", 1, 1, cluster="other")

    response = admin_client.get(reverse("admin:django_q_cluster_changelist"))
    html = response.content.decode()
    health = {row["id"]: row["health"] for row in response.context["clusters"]}
    assert health == {"alive": "ok", "slow": "stale", "gone": "dead"}
    for text in (
        'id="cluster-alive" class="health-ok"',
        'class="health-stale"',
        'class="health-dead"',
        "web-1",
        "4242",
        "running",
        "2h 00m",
        "busy-task",
        "(for 1m 30s)",
        "idle",
        "<td>17</td>",
        "<td>3</td>",
        "stale when its last heartbeat is older than 15s",
        "dead when it is older than 1m 00s",
    ):
        assert text in html, text
    queues = {q["key"]: q for q in response.context["queues"]}
    assert (queues["tests"]["waiting"], queues["tests"]["delayed"]) == (1, 1)
    assert queues["tests"]["oldest"].startswith("5m")
    assert queues["other"]["waiting"] == 1
    assert f"{reverse('admin:django_q_ormq_changelist')}?q=abc" in html


def test_admin_clusters_page_without_clusters(admin_client: Client) -> None:
    response = admin_client.get(reverse("admin:django_q_cluster_changelist"))
    assert "No cluster has sent a heartbeat." in response.content.decode()
    assert [q["key"] for q in response.context["queues"]] == ["tests"]


def test_admin_clusters_have_no_model_forms(admin_client: Client) -> None:
    heartbeat("c1")
    assert admin_client.get("/admin/django_q/cluster/add/").status_code == 404
    assert admin_client.get("/admin/django_q/cluster/c1/change/").status_code == 404
    assert admin_client.get(reverse("admin:django_q_cluster_changelist")).status_code == 200
