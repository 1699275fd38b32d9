"""The trigger time (business time) of a DAG run's EnOS instance, over Airflow's real timetables.

Each case builds a DAG run as this lane's Airflow builds it: the dates come from the real timetable
objects (``next_dagrun_info`` for scheduled, catch-up and backfill runs, ``infer_manual_data_interval``
for manual runs, ``data_interval_for_events`` for Airflow 2's dataset runs), the run is this version's
``DagRun`` model with the fields it has, and the provider's :func:`due_time` reads it. Expected: the
trigger time and the EnOS business date (``${cal_dt}``: the trigger day minus one) the README's table
publishes. Runs on every lane (2.11, 3.0, 3.2, 3.3).
"""

from __future__ import annotations

import inspect
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow import __version__ as airflow_version
from airflow.models.dagrun import DagRun
from airflow.timetables.base import DataInterval, TimeRestriction
from airflow.timetables.interval import CronDataIntervalTimetable
from airflow.timetables.trigger import CronTriggerTimetable
from packaging.version import Version

from airflow_enos_provider._protocol.reattach import business_date
from airflow_enos_provider._validation import to_epoch_ms
from airflow_enos_provider.operators._reattach import due_time

AIRFLOW_3 = Version(airflow_version).major >= 3
START = pendulum.datetime(2026, 12, 1, tz="UTC")  # the DAG's start_date (Airflow passes pendulum times)
NOW = pendulum.datetime(2026, 12, 4, 17, 39, 5, tz="UTC")  # when a catch-up, backfill or manual run starts
DAILY = "0 0 * * *"


def _dag(schedule: Any) -> Any:
    """The timetable the scheduler uses for a DAG with ``schedule`` (3.1+: the core side of the SDK's)."""
    if AIRFLOW_3:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG
    timetable = DAG(f"due_{abs(hash(str(schedule)))}", schedule=schedule, start_date=START).timetable
    try:
        from airflow.serialization.serialized_objects import coerce_to_core_timetable
    except ImportError:  # Airflow 2.11, 3.0: the DAG's timetable is the scheduler's
        return timetable
    return coerce_to_core_timetable(timetable)


def _run(logical_date: datetime | None, interval: DataInterval | None, run_after: datetime) -> DagRun:
    """This version's DagRun, made as the scheduler or the API makes it (run_after only on 3.x)."""
    fields = inspect.signature(DagRun.__init__).parameters
    kwargs: dict[str, Any] = {"dag_id": "d", "run_id": "r", "start_date": NOW, "data_interval": interval}
    if "run_after" in fields:
        kwargs.update(logical_date=logical_date, run_after=run_after)
    else:  # Airflow 2.11: execution_date (logical_date is its synonym), no run_after
        kwargs["execution_date"] = logical_date
    return DagRun(**kwargs)


def _scheduled(timetable: Any, earliest: datetime, latest: datetime | None, n: int) -> list[DagRun]:
    """The first ``n`` runs the scheduler (catch-up) or a backfill over [earliest, latest] creates."""
    restriction = TimeRestriction(earliest=earliest, latest=latest, catchup=True)
    runs, last = [], None
    while len(runs) < n:
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is None:
            break
        runs.append(_run(info.logical_date, info.data_interval, info.run_after))
        last = info.data_interval
    return runs


def _manual(timetable: Any, logical_date: datetime | None) -> DagRun:
    """A manual run (UI, REST API, CLI) triggered at NOW, with or without a logical date (3.x)."""
    if logical_date is None:  # Airflow 3: no logical date, no data interval; due when triggered
        return _run(None, None, NOW)
    return _run(logical_date, timetable.infer_manual_data_interval(run_after=logical_date), NOW)


def _due(run: DagRun) -> tuple[datetime, date]:
    """The trigger time the provider sends for a run, and the business date EnOS computes from it."""
    trigger = due_time(run)
    assert trigger is not None
    return datetime.fromtimestamp(to_epoch_ms(trigger) / 1000, tz=UTC), business_date(to_epoch_ms(trigger))


def _at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return pendulum.datetime(2026, 12, day, hour, minute, second, tz="UTC")


def _d(day: int, month: int = 12) -> date:
    return date(2026, month, day)


def test_the_dag_run_the_task_sees_has_the_dates_the_rule_reads():
    if AIRFLOW_3:  # the task SDK's DagRun (the context's dag_run) carries them as the scheduler set them
        from airflow.sdk.api.datamodels._generated import DagRun as TaskDagRun

        fields = TaskDagRun.model_fields
        assert {"logical_date", "data_interval_start", "data_interval_end", "run_after"} <= set(fields)
    run = _run(_at(3), DataInterval(_at(3), _at(4)), _at(4))
    assert (run.logical_date, run.data_interval_start, run.data_interval_end) == (_at(3), _at(3), _at(4))


def test_cron_trigger_timetable_runs_at_the_logical_date():
    runs = _scheduled(CronTriggerTimetable(DAILY, timezone="UTC"), START, None, 3)
    assert [run.logical_date for run in runs] == [_at(1), _at(2), _at(3)]
    assert [_due(run) for run in runs] == [(_at(1), _d(30, 11)), (_at(2), _d(1)), (_at(3), _d(2))]


def test_cron_data_interval_timetable_runs_at_the_interval_end_its_start_is_the_business_date():
    runs = _scheduled(CronDataIntervalTimetable(DAILY, timezone="UTC"), START, None, 3)
    assert [run.logical_date for run in runs] == [_at(1), _at(2), _at(3)]
    assert [_due(run) for run in runs] == [(_at(2), _d(1)), (_at(3), _d(2)), (_at(4), _d(3))]


def test_daily_uses_this_airflows_default_timetable():
    timetable = _dag("@daily")
    expected = "CronTriggerTimetable" if AIRFLOW_3 else "CronDataIntervalTimetable"
    assert type(timetable).__name__ == expected
    [run] = _scheduled(timetable, _at(3), None, 1)
    # 3.x: the run for Dec 3 00:00 is due then (business date Dec 2); 2.11: the run of the interval
    # Dec 3 -> Dec 4 is due at its end (business date Dec 3, its interval's day).
    assert _due(run) == ((_at(3), _d(2)) if AIRFLOW_3 else (_at(4), _d(3)))


def test_hourly_runs_at_each_hour_of_the_day_its_business_date_the_day_before():
    timetable = _dag("@hourly")
    runs = _scheduled(timetable, _at(3, 22), None, 3)
    if AIRFLOW_3:  # CronTriggerTimetable: due at the logical date
        assert [run.logical_date for run in runs] == [_at(3, 22), _at(3, 23), _at(4, 0)]
        assert [_due(run) for run in runs] == [(_at(3, 22), _d(2)), (_at(3, 23), _d(2)), (_at(4), _d(3))]
    else:  # CronDataIntervalTimetable: due at the end of the hour
        assert [run.logical_date for run in runs] == [_at(3, 22), _at(3, 23), _at(4, 0)]
        assert [_due(run) for run in runs] == [(_at(3, 23), _d(2)), (_at(4), _d(3)), (_at(4, 1), _d(3))]


@pytest.mark.parametrize("kind", ["trigger", "interval"])
def test_a_backfill_runs_each_day_at_its_due_time_not_when_it_starts(kind):
    timetable = (
        CronTriggerTimetable(DAILY, timezone="UTC")
        if kind == "trigger"
        else CronDataIntervalTimetable(DAILY, timezone="UTC")
    )
    runs = _scheduled(timetable, _at(1), _at(3), 10)  # backfill of Dec 1 to Dec 3, started at NOW
    assert [run.start_date for run in runs] == [NOW] * 3
    if kind == "trigger":
        assert [_due(run) for run in runs] == [(_at(1), _d(30, 11)), (_at(2), _d(1)), (_at(3), _d(2))]
    else:
        assert [_due(run) for run in runs] == [(_at(2), _d(1)), (_at(3), _d(2)), (_at(4), _d(3))]


def test_a_manual_run_with_a_logical_date_runs_at_its_due_time():
    # A cron-trigger DAG: the logical date itself; a data-interval DAG: the end of the last whole
    # interval before the logical date (infer_manual_data_interval).
    trigger = _manual(CronTriggerTimetable(DAILY, timezone="UTC"), NOW)
    assert _due(trigger) == (NOW, _d(3))
    interval = _manual(CronDataIntervalTimetable(DAILY, timezone="UTC"), NOW)
    assert (interval.data_interval_start, interval.data_interval_end) == (_at(3), _at(4))
    assert _due(interval) == (_at(4), _d(3))
    unscheduled = _manual(_dag(None), NOW)  # schedule=None: the logical date
    assert _due(unscheduled) == (NOW, _d(3))


@pytest.mark.skipif(not AIRFLOW_3, reason="Airflow 2 gives every manual run a logical date")
def test_a_manual_run_without_a_logical_date_runs_when_it_was_triggered():
    run = _manual(_dag("@daily"), None)
    assert (run.logical_date, run.data_interval_start, run.run_after) == (None, None, NOW)
    assert _due(run) == (NOW, _d(3))


def test_an_asset_triggered_run():
    if AIRFLOW_3:
        from airflow.sdk import Asset

        timetable = _dag([Asset("s3://lake/meters")])
        assert type(timetable).__name__ == "AssetTriggeredTimetable"
        # The scheduler creates it with no logical date and no interval, run_after the time the
        # asset events completed its condition (scheduler_job_runner._create_dag_runs_asset_triggered).
        run = _run(None, None, NOW)
        assert _due(run) == (NOW, _d(3))
        return
    from airflow.datasets import Dataset

    timetable = _dag([Dataset("s3://lake/meters")])
    assert type(timetable).__name__ == "DatasetTriggeredTimetable"
    # 2.11: the logical date is when the condition completed, the interval that of the producing
    # runs: a daily producer's run of Dec 3 makes this run due Dec 4 00:00, business date Dec 3.
    producer = SimpleNamespace(data_interval_start=_at(3), data_interval_end=_at(4))
    event = SimpleNamespace(source_dag_run=producer, timestamp=_at(4, 0, 5))
    run = _run(NOW, timetable.data_interval_for_events(NOW, [event]), NOW)
    assert _due(run) == (_at(4), _d(3))
    # An event from outside Airflow (REST API) has no producing run: its own time.
    external = SimpleNamespace(source_dag_run=None, timestamp=NOW)
    run = _run(NOW, timetable.data_interval_for_events(NOW, [external]), NOW)
    assert _due(run) == (NOW, _d(3))
