"""Without a task state store (Airflow 2.11-3.2), a third try after two failed instances.

A retry searches the flow's instances at its trigger time's candidate minutes. When its DAG has no
other task that may trigger the flow and it is not mapped, every instance of its run there is its
own: the newest is the latest try's, so the third try triggers again instead of failing as
ambiguous. Any other task that may trigger the flow, or more instances than earlier tries, keeps
the search ambiguous: the task fails naming them. Run under each ``trigger_rule`` of the emulator.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_enos_provider.exceptions import EnOSError
from airflow_enos_provider.operators._reattach import sole_trigger_task
from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator
from tests import enos_env as env

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow.models import DAG

FLOW_ID = 2460
DUE = datetime(2026, 12, 4, tzinfo=UTC)
pytestmark = pytest.mark.enos_emulator(clock=None)


@pytest.fixture(params=["same_minute_ids", "wall_clock_minute", "duplicates"])
def state(request, enos_conn):
    emulated = enos_conn.state
    emulated.trigger_rule = request.param
    emulated.trigger_interval = 1.5  # the wall-clock rule's minute, shortened (the provider waits 2 s)
    emulated.add_flow(FLOW_ID, owner=env.USER_ID, tasks=[{"name": "load", "id": "7101"}])
    return emulated


def _dag(*siblings: dict[str, Any]) -> tuple[DAG, EnOSTriggerFlowOperator]:
    """A DAG with the trigger task ``start`` and ``siblings`` (EnOSTriggerFlowOperator kwargs)."""
    with DAG("sole_task", schedule=None, start_date=DUE - timedelta(days=30)) as dag:
        op = EnOSTriggerFlowOperator(
            task_id="start", flow_id=FLOW_ID, poll_interval=0.01, wait_for_completion=False
        )
        for n, kwargs in enumerate(siblings):
            EnOSTriggerFlowOperator(task_id=f"sibling_{n}", **kwargs)
    return dag, op


def _try(op: EnOSTriggerFlowOperator, try_number: int, started: datetime) -> str:
    run = SimpleNamespace(
        data_interval_start=DUE - timedelta(days=1), data_interval_end=DUE,
        logical_date=DUE - timedelta(days=1), start_date=started, run_after=DUE,
    )  # fmt: skip
    ti = SimpleNamespace(start_date=None, try_number=try_number, map_index=-1, task_id=op.task_id)
    ti.xcom_push = lambda key, value: None
    return str(op.execute({"ti": ti, "dag_run": run}))  # no task_state_store: Airflow before 3.3


def _fail_twice(state, op: EnOSTriggerFlowOperator) -> tuple[datetime, list[str]]:
    started = datetime.fromtimestamp(state.now() - 5, tz=UTC)
    first = _try(op, 1, started)
    state.set_instance_status(first, "FAIL")
    second = _try(op, 2, started)  # one instance found: its own, failed: triggers again
    state.set_instance_status(second, "FAIL")
    assert first != second
    return started, [first, second]


def test_the_only_trigger_task_of_a_flow_takes_the_newest_instance_as_its_latest_tries(state, caplog, capsys):
    _, op = _dag(dict(flow_id=FLOW_ID + 1))  # a sibling on another flow does not count
    started, failed = _fail_twice(state, op)
    with caplog.at_level(logging.INFO):
        third = _try(op, 3, started)
    assert third not in failed
    assert [i for i in state.instance_ids() if i.startswith(f"{FLOW_ID}-")] == [*failed, third]
    logged = capsys.readouterr().out + caplog.text
    assert f"the newest, {failed[1]}, is the latest try's" in logged
    assert f"{failed[1]} ended FAIL: triggering again" in logged


@pytest.mark.parametrize(
    "sibling",
    [dict(flow_id=FLOW_ID), dict(flow_id="{{ dag_run.conf['flow_id'] }}")],
    ids=["same", "templated"],
)
def test_another_task_that_may_trigger_the_flow_keeps_the_search_ambiguous(state, sibling):
    _, op = _dag(sibling)
    started, failed = _fail_twice(state, op)
    with pytest.raises(EnOSError, match=f"several EnOS flow instances \\({failed[0]}, {failed[1]}\\)"):
        _try(op, 3, started)
    assert [i for i in state.instance_ids() if i.startswith(f"{FLOW_ID}-")] == failed


def test_more_instances_than_earlier_tries_keep_the_search_ambiguous(state):
    _, op = _dag()
    started, failed = _fail_twice(state, op)
    with pytest.raises(EnOSError, match="several EnOS flow instances"):
        _try(op, 2, started)  # a second try cannot have two instances of its own
    assert [i for i in state.instance_ids() if i.startswith(f"{FLOW_ID}-")] == failed


def test_which_tasks_count_as_other_triggers_of_the_flow():
    assert sole_trigger_task(_dag()[1], -1)
    assert sole_trigger_task(_dag(dict(flow_id=FLOW_ID + 1))[1], None)
    assert not sole_trigger_task(_dag()[1], 3)  # a mapped task's siblings share its due time
    assert not sole_trigger_task(_dag(dict(flow_id=str(FLOW_ID)))[1], -1)
    with DAG("mapped_sibling", schedule=None, start_date=DUE) as dag:
        op = EnOSTriggerFlowOperator(task_id="start", flow_id=FLOW_ID)
        EnOSTriggerFlowOperator.partial(task_id="mapped", flow_id=FLOW_ID + 1).expand(
            parameters=[{"A": "1"}, {"A": "2"}]
        )
    assert dag.task_dict["start"] is op
    assert not sole_trigger_task(op, -1)  # mapped: counted whatever its flow
    assert not sole_trigger_task(EnOSTriggerFlowOperator(task_id="no_dag", flow_id=FLOW_ID), -1)
