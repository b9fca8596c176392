"""Several processes claim from one queue at once: every task is claimed exactly once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from taskq.brokers import get_broker
from taskq.messages import Delivery
from taskq_tests import clusters

pytestmark = pytest.mark.django_db(transaction=True)

CLAIMER = """
import json, sys, django
django.setup()
from taskq.brokers import get_broker
broker = get_broker()
owner, claimed = sys.argv[1], []
while True:
    batch = broker.claim(owner, 7)
    if not batch:
        break
    claimed += [d.ack_id for d in batch]
print(json.dumps(claimed))
"""


def test_racing_claimers_take_each_task_exactly_once() -> None:
    broker = get_broker()
    ids = {broker.enqueue(f"payload-{i}") for i in range(2000)}
    env = clusters.cluster_env()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, f"owner-{n}"],
            env=env,
            cwd=clusters.ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    claimed: list[int] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        claimed += json.loads(out)
    assert len(claimed) == len(set(claimed)) == 2000
    assert set(claimed) == ids
    assert broker.lock_size() == 2000
    assert broker.ready_size() == 0


def test_a_stale_acknowledgement_never_removes_a_reclaimed_task() -> None:
    broker = get_broker()
    broker.enqueue("p")
    (first,) = broker.claim("a", 1)
    broker.release([first])
    (second,) = broker.claim("b", 1)
    assert broker.ack_many([first]) == set()
    stale = Delivery(ack_id=first.ack_id, token=first.token, attempt=1, payload="")
    assert broker.release([stale]) == 0
    assert broker.ack_many([second]) == {(second.ack_id, second.token)}
