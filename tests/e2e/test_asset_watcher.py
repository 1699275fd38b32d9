"""The real scheduler: a DAG scheduled on an EnOS flow's SUCCESS instances runs once per instance.

The consumer DAGs (dags/e2e_enos_asset_watcher.py) are scheduled on assets whose ``AssetWatcher``
runs ``EnOSFlowInstanceEventTrigger`` in Airflow's own triggerer; each event becomes an asset event
and the scheduler creates a run for it. The emulator is this module's own, on a manual clock: EnOS's
scheduler (the test) starts each instance, SUCCESS or FAIL, and moves the clock to its end, so an
instance ends exactly when and at the time the test says. One instance ends at a time and the test
waits for its run, so a run consumes one event and the runs count the events.

Scenarios: the triggerer is SIGKILLed between the second and third SUCCESS (the third ends while no
triggerer runs); the gateway refuses connections for 60 s while the second ends. Each prints its
counts (instances, DAG runs, duplicates, misses) for the report; each ends by letting the watcher
poll twice more, so a late duplicate would be counted. The SIGKILL scenario needs the asset state
store (Airflow 3.3), the outage one runs on 3.0+; Airflow 2.11 has no AssetWatcher and skips both.
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow import __version__ as airflow_version
from packaging.version import Version

from airflow_enos_provider.emulator import EnOSEmulator
from tests import enos_env
from tests.e2e import crash
from tests.e2e.airflow_stack import AIRFLOW_2, AirflowStack, wait_for
from tests.e2e.conftest import local_stack
from tests.e2e.scenarios import FINAL_RUN_STATES, status, wait_log_text

KILL_DAG, OUTAGE_DAG = "e2e_enos_asset_watcher_kill", "e2e_enos_asset_watcher_outage"
FLOWS = {KILL_DAG: 5801, OUTAGE_DAG: 5802}  # as the DAG file names them
RUN_SECONDS = 10  # of the clock, from an instance's start to its end
END_AFTER = 2  # seconds from starting an instance to its end
OUTAGE_SECONDS = 60
SEARCH = "flowInstances.search"
SETTINGS = {
    # A SIGKILLed triggerer's watchers move to a new one once its heartbeat is this stale.
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
    # Watchers are registered when the file is parsed after the unpause.
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
}
pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(AIRFLOW_2, reason="AssetWatcher (event-driven scheduling) needs Airflow 3.0+"),
]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EnOSEmulator]:
    """An emulator of this module's own on a manual clock, with the two watched (periodic) flows."""
    with enos_env.start_emulator(clock="manual") as enos:
        for flow_id in FLOWS.values():
            enos.state.add_flow(
                flow_id,
                name=f"e2e_watched_{flow_id}",
                owner=enos_env.USER_ID,
                init_seconds=0,
                run_seconds=RUN_SECONDS,
                type=1,  # periodic: EnOS runs it on its own schedule
            )
        yield enos


@pytest.fixture(scope="module")
def airflow(emulator: EnOSEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("airflow-home-asset-watcher")
    with local_stack("asset-watcher", emulator, home, FLOWS, **SETTINGS) as stack:
        yield stack


# ----------------------------------------------------------------- EnOS: the test is its scheduler


def searches(enos: EnOSEmulator, flow_id: int) -> int:
    """List Flow Instances requests for this flow that EnOS answered (code 0)."""
    return sum(
        1
        for r in enos.state.requests
        if r.operation == SEARCH and r.code == 0 and str(flow_id) in str((r.body or {}).get("expression"))
    )


def wait_polls(enos: EnOSEmulator, flow_id: int, more: int, timeout: float = 90) -> None:
    """Wait until the watcher of this flow has searched ``more`` more times (answered)."""
    base = searches(enos, flow_id)
    wait_for(
        f"{more} more searches for flow {flow_id}",
        lambda: searches(enos, flow_id) >= base + more,
        timeout,
        describe=lambda: f"{searches(enos, flow_id) - base} seen",
    )


def start_instance(enos: EnOSEmulator, flow_id: int, minute: int, end_status: str) -> tuple[str, float]:
    """Start an instance of the flow as EnOS's scheduler would: triggered ``minute`` minutes after
    the wall clock's minute (its id names that minute), RUNNING until it ends in ``end_status`` at
    the returned clock time, when the test moves the clock there (:func:`end_on_clock`).

    It ends END_AFTER seconds after the wall time it starts at (EnOS writes whole seconds: so it
    ends in a later second than anything the watcher did before it started), and never before
    the clock's time.

    :return: its id and its end (epoch seconds).
    """
    wall = time.time()
    end_at = max(wall, enos.state.now()) + END_AFTER
    enos.state.advance(max(0.0, end_at - RUN_SECONDS - enos.state.now()))  # to its start, if behind
    trigger_ms = (int(wall // 60) + minute) * 60_000
    flow_inst_id = f"{flow_id}-{time.strftime('%Y%m%d%H%M', time.gmtime(trigger_ms / 1000))}"
    enos.state.schedule_instance(
        flow_inst_id,
        flow_id,
        end_at,
        end_status=end_status,
        start_at=end_at - RUN_SECONDS,
        trigger_time_ms=trigger_ms,
    )
    assert status(enos, flow_inst_id) == "RUNNING"
    return flow_inst_id, end_at


def end_on_clock(enos: EnOSEmulator, flow_inst_id: str, end_at: float, end_status: str) -> None:
    """Move the clock to the instance's end once the wall clock is there (the emulator's clock is
    then never ahead of the triggerer's): it is ``end_status`` from then on, ended at that time."""
    wait_for("the wall clock to reach the instance's end", lambda: time.time() >= end_at, END_AFTER + 5)
    enos.state.advance(end_at - enos.state.now())
    assert status(enos, flow_inst_id) == end_status


# ----------------------------------------------------------------- Airflow: runs and asset events


@dataclass
class Watched:
    """One consumer DAG, its asset, and what the test made EnOS do to its flow."""

    stack: AirflowStack
    enos: EnOSEmulator
    dag_id: str
    flow_id: int
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @functools.cached_property
    def asset_id(self) -> int:
        name = f"e2e_enos_flow_{self.flow_id}"
        found = self.stack.api.call("GET", "/assets", params={"name_pattern": name})["assets"]
        [asset] = [a for a in found if a["name"] == name]
        return int(asset["id"])

    def watching(self) -> bool:
        """Whether the asset has its watcher's trigger (registered after the unpause)."""
        found = self.stack.api.call("GET", f"/assets/{self.asset_id}")
        return bool(found.get("watchers"))

    def events(self) -> list[dict[str, Any]]:
        """The asset's events, oldest first."""
        params = {"asset_id": self.asset_id, "order_by": "timestamp", "limit": 100}
        return list(self.stack.api.call("GET", "/assets/events", params=params)["asset_events"])

    def event_ids(self) -> list[str]:
        """The instance id each asset event carries, oldest first."""
        return [str(e["extra"]["payload"]["flow_inst_id"]) for e in self.events()]

    def runs(self) -> list[dict[str, Any]]:
        reply = self.stack.api.call("GET", f"/dags/{self.dag_id}/dagRuns", params={"limit": 100})
        return sorted(reply["dag_runs"], key=lambda r: str(r["run_after"]))

    def ended_runs(self) -> list[dict[str, Any]] | None:
        """The runs, once every one has ended; None while one has not."""
        runs = self.runs()
        return runs if all(r["state"] in FINAL_RUN_STATES for r in runs) else None

    def consumed(self, run_id: str) -> list[str]:
        """The instance ids of the asset events that triggered this run."""
        reply = self.stack.api.call("GET", f"/dags/{self.dag_id}/dagRuns/{run_id}/upstreamAssetEvents")
        return [str(e["extra"]["payload"]["flow_inst_id"]) for e in reply["asset_events"]]

    def wait_watching(self) -> None:
        """Wait until the watcher's trigger exists and has searched the flow (EnOS answered)."""
        wait_for(f"a watcher on {self.dag_id}'s asset", self.watching, 90, describe=self.stack.describe)
        wait_polls(self.enos, self.flow_id, 1)

    def end(self, end_status: str = "SUCCESS", polled: bool = True) -> str:
        """Start an instance and end it on the clock, after a search saw it running if ``polled``
        (the gateway is up); record it. The n-th (from 0) is triggered n - 4 minutes after the wall
        clock's minute: the ids differ, each names a minute before its start."""
        minute = len(self.succeeded) + len(self.failed) - 4
        flow_inst_id, end_at = start_instance(self.enos, self.flow_id, minute, end_status)
        if polled:
            wait_polls(self.enos, self.flow_id, 1)  # a search found it RUNNING: not an event
        end_on_clock(self.enos, flow_inst_id, end_at, end_status)
        (self.succeeded if end_status == "SUCCESS" else self.failed).append(flow_inst_id)
        return flow_inst_id

    def wait_run(self, flow_inst_id: str, timeout: float = 120) -> None:
        """Wait until a run of the DAG consumed the asset event of this instance."""

        def probe() -> bool:
            self.stack.check_alive()
            # Airflow 3.3.2 answers 500 for the events of a run not started yet (its start_date
            # is None, which its AssetEventResponse refuses): ask once the run has started.
            started = [r for r in self.runs() if r["start_date"]]
            return any(flow_inst_id in self.consumed(r["dag_run_id"]) for r in started)

        wait_for(
            f"a {self.dag_id} run for EnOS instance {flow_inst_id}",
            probe,
            timeout,
            interval=1,
            describe=lambda: f"runs {[r['state'] for r in self.runs()]}; {self.stack.describe()}",
        )

    def tally(self, scenario: str, record: Callable[[str, object], None]) -> dict[str, int]:
        """Wait until every run ended and the watcher polled twice more, then count, print and
        ``record`` the counts (pytest's ``record_property``: the e2e timings report shows them)."""
        wait_polls(self.enos, self.flow_id, 2)
        runs = wait_for(
            f"every {self.dag_id} run to end",
            self.ended_runs,
            120,
            describe=lambda: str([r["state"] for r in self.runs()]),
        )
        per_run = {r["dag_run_id"]: self.consumed(r["dag_run_id"]) for r in runs}
        in_tasks = {run_id: self.stack.api.xcom(self.dag_id, run_id, "consume") for run_id in per_run}
        events = Counter(self.event_ids())
        counts = {
            "instances": len(self.succeeded),
            "failed instances": len(self.failed),
            "DAG runs": len(runs),
            "asset events": sum(events.values()),
            "duplicates": sum(n - 1 for n in events.values()),
            "misses": len(set(self.succeeded) - set(events)),
            "runs for FAIL instances": len(set(self.failed) & set(events)),
        }
        for name, value in counts.items():
            record(name, value)
        print(f"{scenario}: {counts}; instances {self.succeeded}; runs consumed {per_run}")
        print(f"{scenario}: asset state store {self.state_store()}")
        assert [r["state"] for r in runs] == ["success"] * len(runs)
        assert in_tasks == per_run  # each run's task saw the events the run consumed
        assert sorted(i for ids in per_run.values() for i in ids) == sorted(self.succeeded)
        return counts

    def state_store(self) -> Any:
        """What the watcher keeps in the asset state store (Airflow 3.3+; None before)."""
        reply = self.stack.api.call("GET", f"/assets/{self.asset_id}/state-store", expect=(200, 404))
        return None if reply is None else reply.get("asset_state_store")


def expected(watched: Watched) -> dict[str, int]:
    n, m = len(watched.succeeded), len(watched.failed)
    return {
        "instances": n,
        "failed instances": m,
        "DAG runs": n,
        "asset events": n,
        "duplicates": 0,
        "misses": 0,
        "runs for FAIL instances": 0,
    }


# ----------------------------------------------------------------- the scenarios


@pytest.mark.skipif(
    not AIRFLOW_2 and Version(airflow_version) < Version("3.3"),
    reason="needs the asset state store (3.3+): before it a restarted watcher starts again from "
    "start_from, so an instance that ended while no triggerer ran is missed (docs/howto/asset_watcher.rst)",
)
def test_a_sigkilled_triggerer_neither_repeats_nor_misses_an_instance(
    airflow: AirflowStack, emulator: EnOSEmulator, record_property: Callable[[str, object], None]
):
    """Three SUCCESS instances and a FAIL; the triggerer dies by SIGKILL after the second's run and
    the third ends while none runs: after the restart, one run each, none twice."""
    watched = Watched(airflow, emulator, KILL_DAG, FLOWS[KILL_DAG])
    watched.wait_watching()

    watched.wait_run(watched.end())
    watched.end(end_status="FAIL")
    second = watched.end()
    watched.wait_run(second)
    # Airflow confirms an event stored before the watcher writes its watermark: a kill in between
    # repeats the event (documented). The kill comes once the stored watermark names the second.
    wait_for(
        f"the asset state store to name {second}",
        lambda: second in json.dumps(watched.state_store()),
        60,
        describe=lambda: str(watched.state_store()),
    )

    crash.kill_component(airflow, "triggerer")
    third = watched.end(polled=False)  # no triggerer runs
    airflow.start("triggerer", "triggerer", "--skip-serve-logs")

    watched.wait_run(third, timeout=180)
    assert watched.tally("triggerer SIGKILL", record_property) == expected(watched)


def test_a_one_minute_gateway_outage_misses_no_instance(
    airflow: AirflowStack, emulator: EnOSEmulator, record_property: Callable[[str, object], None]
):
    """Three SUCCESS instances and a FAIL; the FAIL and the second SUCCESS end while the gateway
    refuses every connection for 60 s: the second's run comes when it is back, the FAIL's never."""
    watched = Watched(airflow, emulator, OUTAGE_DAG, FLOWS[OUTAGE_DAG])
    watched.wait_watching()
    watched.wait_run(watched.end())

    with crash.gateway_down(emulator) as down:
        watched.end(end_status="FAIL", polled=False)
        second = watched.end(polled=False)
        crash.hold(OUTAGE_SECONDS, since=down, during=airflow.check_alive)
        assert len(watched.runs()) == 1  # nothing could be seen meanwhile

    watched.wait_run(second, timeout=180)
    wait_log_text(airflow, f"of flow {watched.flow_id} readable again after an outage", 30)  # polled through
    watched.wait_run(watched.end())
    assert watched.tally("gateway outage", record_property) == expected(watched)
