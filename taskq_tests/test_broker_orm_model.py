"""The ORM broker against the model of ``brokermodel.py``, with its rows checked after
every step."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import invariant, run_state_machine_as_test

from taskq.models import Cluster, OrmQ

from .brokermodel import BrokerModel

pytestmark = pytest.mark.django_db(transaction=True)


class OrmBrokerModel(BrokerModel):
    def clean(self) -> None:
        OrmQ.objects.all().delete()
        Cluster.objects.all().delete()

    def kill(self, owner: str) -> None:
        stale = timezone.now() - timedelta(seconds=600)
        Cluster.objects.filter(id=owner).update(heartbeat=stale)

    @invariant()
    def the_table_matches_the_model(self) -> None:
        self.check_sizes()
        rows = {row.id: row for row in OrmQ.objects.all()}
        assert set(rows) == set(self.tasks)
        for ack_id, task in self.tasks.items():
            assert (rows[ack_id].attempt, rows[ack_id].owner, rows[ack_id].token) == (
                task["attempt"],
                task["owner"],
                task["token"],
            )


def test_the_orm_broker_matches_its_model_under_random_operations() -> None:
    run_state_machine_as_test(
        OrmBrokerModel,
        settings=hypothesis_settings(
            max_examples=30, stateful_step_count=40, deadline=None, derandomize=True, database=None
        ),
    )
