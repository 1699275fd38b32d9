"""The event watcher's watermark: out-of-order and same-second ends, restarts, pruning, what a store keeps."""

from __future__ import annotations

import random

from airflow_enos_provider._watermark import LOOKBACK_MS, Ended, Watermark
from airflow_enos_provider.status import EnOSFlowInstanceStatus as S

T0 = 1_796_342_400_000  # 2026-12-04 00:00 UTC


def ended(n: int, end_ms: int) -> Ended:
    return Ended(f"5001-2026120400{n:02d}", end_ms, S.SUCCESS, {})


def taken(mark: Watermark, *listed: Ended) -> list[str]:
    return [e.flow_inst_id for e in mark.take(listed)]


def test_new_instances_come_oldest_first_then_by_id():
    mark = Watermark(since=T0)
    assert taken(mark, ended(3, T0 + 20), ended(2, T0 + 10), ended(1, T0 + 20)) == [
        ended(2, 0).flow_inst_id,
        ended(1, 0).flow_inst_id,
        ended(3, 0).flow_inst_id,
    ]
    assert mark.mark == T0 + 20


def test_an_instance_listed_again_is_not_taken_again():
    mark = Watermark(since=T0)
    taken(mark, ended(1, T0 + 10))
    assert taken(mark, ended(1, T0 + 10), ended(1, T0 + 10)) == []


def test_a_late_instance_that_ended_earlier_is_taken_within_the_lookback():
    mark = Watermark(since=T0)
    taken(mark, ended(2, T0 + 5_000))
    assert taken(mark, ended(1, T0 + 1_000)) == [ended(1, 0).flow_inst_id]
    assert mark.mark == T0 + 5_000  # the mark never moves back


def test_equal_end_times_split_over_polls_are_all_taken_once():
    mark = Watermark(since=T0)
    assert taken(mark, ended(1, T0 + 1_000)) == [ended(1, 0).flow_inst_id]
    assert taken(mark, ended(1, T0 + 1_000), ended(2, T0 + 1_000)) == [ended(2, 0).flow_inst_id]
    assert taken(mark, ended(2, T0 + 1_000), ended(1, T0 + 1_000)) == []


def test_nothing_that_ended_before_since_is_taken():
    mark = Watermark(since=T0)
    assert taken(mark, ended(1, T0 - 1), ended(2, T0)) == [ended(2, 0).flow_inst_id]


def test_seen_ids_are_pruned_behind_the_horizon_and_never_taken_again():
    mark = Watermark(since=T0)
    taken(mark, ended(1, T0 + 1_000))
    taken(mark, ended(2, T0 + 1_000 + LOOKBACK_MS + 1))
    assert ended(1, 0).flow_inst_id not in mark.seen
    assert mark.horizon > T0 + 1_000
    assert taken(mark, ended(1, T0 + 1_000)) == []  # below the horizon: announced long ago


def test_a_restart_from_the_stored_json_repeats_nothing_and_misses_nothing():
    mark = Watermark(since=T0)
    taken(mark, ended(1, T0 + 10), ended(2, T0 + 20))
    again = Watermark.from_json(mark.to_json())
    assert again == mark
    assert taken(again, ended(1, T0 + 10), ended(2, T0 + 20), ended(3, T0 + 15)) == [ended(3, 0).flow_inst_id]


def test_any_arrival_order_gives_each_instance_exactly_once():
    # 40 instances, 8 per end second, listed over random overlapping polls, restarts in between.
    everything = [ended(n, T0 + 1_000 * (n // 8)) for n in range(40)]
    rng = random.Random(23)
    for _ in range(50):
        mark, out = Watermark(since=T0), []
        visible = 0
        while visible < len(everything):
            visible = min(len(everything), visible + rng.randint(0, 6))
            listed = rng.sample(everything[:visible], k=visible)
            out += taken(mark, *listed)
            if rng.random() < 0.3:
                restored = Watermark.from_json(mark.to_json())
                assert restored is not None
                mark = restored
        assert sorted(out) == sorted(e.flow_inst_id for e in everything)


def test_an_unreadable_store_value_is_no_watermark():
    assert Watermark.from_json(None) is None
    assert Watermark.from_json({"version": 99, "since": 1, "mark": 1, "seen": {}}) is None
    assert Watermark.from_json({"version": 1, "since": "x", "mark": 1, "seen": {}}) is None


def test_watermarks_of_several_assets_merge_to_what_any_announced():
    a = Watermark(since=T0)
    taken(a, ended(1, T0 + 10))
    b = Watermark(since=T0 + 5)
    taken(b, ended(2, T0 + 20))
    merged = Watermark.merged([a, b])
    assert merged is not None
    assert merged.since == T0 and merged.mark == T0 + 20
    assert taken(merged, ended(1, T0 + 10), ended(2, T0 + 20)) == []
    assert Watermark.merged([]) is None
