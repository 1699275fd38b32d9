"""The Quartz cron subset the emulator runs a flow's schedule on (emulator/schedule.py)."""

from __future__ import annotations

import calendar

import pytest

from airflow_enos_provider.emulator.schedule import Cron, Schedule


def at(text: str) -> float:
    return float(calendar.timegm(tuple(int(p) for p in text.replace("-", " ").replace(":", " ").split())))


def times(expression: str, after: str, until: str) -> list[float]:
    return sorted(Cron(expression).fire_times(at(after), at(until)))


def test_get_flows_sample_is_daily_at_midnight():
    # get_flow.md's sample freq: "0 0 0 * * ? *".
    assert times("0 0 0 * * ? *", "2026 12 1 0 0 0", "2026 12 4 0 0 0") == [
        at("2026 12 2 0 0 0"),
        at("2026 12 3 0 0 0"),
        at("2026 12 4 0 0 0"),
    ]


def test_steps_ranges_lists_and_names():
    assert times("30 */20 9-10 * * ?", "2026 12 4 9 0 0", "2026 12 4 10 59 59") == [
        at(f"2026 12 4 {h} {m} 30") for h in (9, 10) for m in (0, 20, 40)
    ]
    # 2026-12-04 is a Friday; MON,FRI picks it and the Monday after.
    assert times("0 0 6 ? * MON,FRI", "2026 12 3 0 0 0", "2026 12 8 0 0 0") == [
        at("2026 12 4 6 0 0"),
        at("2026 12 7 6 0 0"),
    ]
    assert times("0 0 0 1 JAN ? 2027", "2026 1 1 0 0 0", "2028 1 2 0 0 0") == [at("2027 1 1 0 0 0")]


def test_the_window_is_open_at_its_start_and_closed_at_its_end():
    assert times("0 0 * * * ?", "2026 12 4 1 0 0", "2026 12 4 2 0 0") == [at("2026 12 4 2 0 0")]


def test_a_schedule_hands_out_each_fire_time_once_and_keeps_the_latest_when_capped():
    start = at("2026 12 4 0 0 0")
    schedule = Schedule(None, 250, origin=start, until=start)
    assert schedule.due(start + 1) == [start + 0.25, start + 0.5, start + 0.75, start + 1]
    assert schedule.due(start + 1) == []
    assert schedule.due(start + 3, limit=2) == [start + 2.75, start + 3]
    schedule.skip_to(start + 10)
    assert schedule.due(start + 10.3) == [start + 10.25]


@pytest.mark.parametrize("expression", ["* * * * *", "0 0 0 ? * 1#2", "0 0 0 32 * ?", "0 0 0 * * ? 1900"])
def test_what_is_not_supported_is_refused(expression):
    with pytest.raises(ValueError, match="cron"):
        Cron(expression)
