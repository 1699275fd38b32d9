"""What the crash tests do to a running stack and read back from the emulator.

Faults are real: a task process or the triggerer dies by SIGKILL (no handler runs), the gateway
stops listening (connections are refused). Every wait is bounded; every process is found by pid.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import psutil

from airflow_enos_provider.emulator import EnOSEmulator
from tests import enos_env
from tests.e2e.airflow_stack import AirflowStack, wait_for
from tests.e2e.scenarios import CANCEL, FINAL_RUN_STATES, GET, requests_for, status, wait_reads

TRIGGER, TRIGGER_FROM_TASK = "flows.trigger", "flows.triggerFromTask"
TRIGGERS = (TRIGGER, "flows.updateAndTrigger", TRIGGER_FROM_TASK)


# ----------------------------------------------------------------- what the emulator saw


def add_flows(enos: EnOSEmulator, flow_ids: Iterable[int], tasks: list[Any] | None = None) -> None:
    """Register hour-long flows; their instances end only when a test sets their status."""
    for flow_id in flow_ids:
        enos.state.add_flow(
            flow_id,
            name=f"e2e_{flow_id}",
            owner=enos_env.USER_ID,
            init_seconds=0,
            run_seconds=3600,
            tasks=tasks,
        )


def instances_of(enos: EnOSEmulator, flow_id: int) -> list[str]:
    """The ids of every EnOS instance of this flow, oldest first."""
    return [i for i in enos.state.instance_ids() if i.split("-", 1)[0] == str(flow_id)]


def instances_per_flow(enos: EnOSEmulator, flow_ids: Iterable[int]) -> dict[int, int]:
    return {flow_id: len(instances_of(enos, flow_id)) for flow_id in flow_ids}


def triggers_of(enos: EnOSEmulator, flow_id: int, operations: Iterable[str] = TRIGGERS) -> list[Any]:
    """The recorded trigger requests (any of ``operations``) that named this flow."""
    wanted = set(operations)
    return [
        r
        for r in enos.state.requests
        if r.operation in wanted and str((r.body or {}).get("flowId")) == str(flow_id)
    ]


def count(enos: EnOSEmulator, operation: str) -> int:
    return enos.state.count(operation)


def reads_by_instance(enos: EnOSEmulator) -> dict[str, int]:
    """How many Get Flow Instance requests named each instance so far."""
    reads: dict[str, int] = {}
    for request in enos.state.requests:
        if request.operation == GET:
            named = (request.body or {}).get("flowInstId") or request.query.get("flowInstId")
            reads[str(named)] = reads.get(str(named), 0) + 1
    return reads


def wait_all_read_again(
    enos: EnOSEmulator, ids: Iterable[str], before: dict[str, int], timeout: float
) -> None:
    """Wait until every instance in ``ids`` was read more often than ``before`` says."""
    ids = list(ids)

    def lagging() -> list[str]:
        now = reads_by_instance(enos)
        return [i for i in ids if now.get(i, 0) <= before.get(i, 0)]

    wait_for(
        f"all {len(ids)} waits to poll again",
        lambda: not lagging(),
        timeout,
        interval=1,
        describe=lambda: f"{len(lagging())} not read again, e.g. {lagging()[:5]}",
    )


def finish(enos: EnOSEmulator, ids: Iterable[str], final: str = "SUCCESS") -> None:
    for flow_inst_id in ids:
        enos.state.set_instance_status(flow_inst_id, final)


def cancels_of(enos: EnOSEmulator, ids: Iterable[str]) -> int:
    """How many cancel requests named any of these instances."""
    wanted = {str(i) for i in ids}
    return sum(
        1
        for r in enos.state.requests
        if r.operation == CANCEL
        and str((r.body or {}).get("flowInstId") or r.query.get("flowInstId")) in wanted
    )


def task_statuses(enos: EnOSEmulator, flow_inst_id: str) -> dict[str, str]:
    """Task name to status in the instance's graph, as Get Flow Instance shows it."""
    graph = json.loads(enos.state.instance(flow_inst_id)["graph"])
    return {task["taskName"]: task["status"] for task in graph["tasks"]}


# ----------------------------------------------------------------- the gateway


@contextlib.contextmanager
def gateway_down(enos: EnOSEmulator) -> Iterator[float]:
    """Stop the emulator (its state stays) for the block: connections to its port are refused.
    Start it again on the same port when the block ends, however it ends.

    :return: the monotonic time it went down.
    """
    enos.stop()
    try:
        yield time.monotonic()
    finally:
        start_gateway(enos)


def start_gateway(enos: EnOSEmulator, timeout: float = 30) -> None:
    """Serve the emulator's state again on its port (retried while the port is briefly taken)."""

    def bound() -> bool:
        try:
            enos.start()
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            return False
        return True

    wait_for(f"the emulator to listen on port {enos.port} again", bound, timeout)


def hold(seconds: float, since: float, during: Callable[[], None]) -> None:
    """Let ``seconds`` pass since ``since`` (the length of a fault, not a synchronisation), calling
    ``during()`` every few seconds and at the end, to check what must hold meanwhile."""
    while (left := seconds - (time.monotonic() - since)) > 0:
        during()
        time.sleep(min(5.0, left))
    during()


def logged(stack: AirflowStack, texts: dict[str, str]) -> dict[str, int]:
    """How often each text appears in the stack's task logs (deferred waits log there too)."""
    logs = [
        p.read_text(encoding="utf-8", errors="replace") for p in stack.log_dir.glob("task-logs/**/*.log*")
    ]
    return {key: sum(log.count(text) for log in logs) for key, text in texts.items()}


def wait_logged_once(stack: AirflowStack, texts: dict[str, str], timeout: float) -> None:
    """Wait until each text appears exactly once in the task logs (fail if any appears twice)."""

    def wrong() -> dict[str, int]:
        return {k: n for k, n in logged(stack, texts).items() if n != 1}

    wait_for(
        f"{len(texts)} log lines", lambda: not wrong(), timeout, interval=2, describe=lambda: str(wrong())
    )


# ----------------------------------------------------------------- Airflow's processes


def task_process(stack: AirflowStack, ti_id: str) -> psutil.Process | None:
    """The process running this task instance's code (its title is ``airflow worker -- <ti id>``).

    Searched among the components' descendants (the LocalExecutor's or a Celery worker's): the title
    can overwrite the process's environment, so the stack's marker may not show in it.
    """
    for process in (p for c in stack.components.values() for p in c.descendants()):
        with contextlib.suppress(psutil.Error):
            if f"airflow worker -- {ti_id}" in " ".join(process.cmdline()):
                return process
    return None


def sigkill(process: psutil.Process, what: str) -> None:
    """SIGKILL one process by pid and wait until it is gone."""
    process.send_signal(signal.SIGKILL)
    gone, _ = psutil.wait_procs([process], timeout=30)
    assert gone, f"{what} (pid {process.pid}) survived SIGKILL"


def kill_component(stack: AirflowStack, name: str) -> None:
    """SIGKILL a component and every process it started at once, as a crash of its host would."""
    component = stack.components[name]
    family = [psutil.Process(component.pid), *component.descendants()]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(component.pid, signal.SIGKILL)
    for process in family:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGKILL)
    _, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, f"{name} processes survived SIGKILL: {[p.pid for p in alive]}"
    assert not component.alive()


def mapped_states(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> dict[int, str]:
    """Map index to state of every instance of a mapped task."""
    reply = stack.api.call(
        "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/listMapped", params={"limit": 1000}
    )
    return {int(ti["map_index"]): str(ti["state"]) for ti in reply["task_instances"]}


def wait_mapped(
    stack: AirflowStack, dag_id: str, run_id: str, task_id: str, states: Iterable[str], n: int, timeout: float
) -> dict[int, str]:
    """Wait until ``n`` instances of the mapped task exist and every one is in ``states``."""
    wanted = set(states)
    seen: dict[int, str] = {}

    def probe() -> dict[int, str] | None:
        stack.check_alive()
        seen.clear()
        seen.update(mapped_states(stack, dag_id, run_id, task_id))
        return dict(seen) if len(seen) == n and set(seen.values()) <= wanted else None

    def describe() -> str:
        tally: dict[str, int] = {}
        for state in seen.values():
            tally[state] = tally.get(state, 0) + 1
        return f"{len(seen)} instances: {tally}; {stack.describe()}"

    return wait_for(
        f"{n} {dag_id}.{task_id} in {sorted(wanted)}", probe, timeout, interval=2, describe=describe
    )


def wait_instances(enos: EnOSEmulator, flow_ids: list[int], timeout: float) -> list[str]:
    """Wait until every flow has an instance; return the first instance of each, in flow order."""

    def probe() -> list[str] | None:
        found = [instances_of(enos, f) for f in flow_ids]
        return [ids[0] for ids in found] if all(found) else None

    def describe() -> str:
        return f"{sum(1 for f in flow_ids if instances_of(enos, f))} of {len(flow_ids)} started"

    return wait_for(f"{len(flow_ids)} flows to start", probe, timeout, interval=1, describe=describe)


def all_running(enos: EnOSEmulator, ids: Iterable[str]) -> None:
    states = {i: status(enos, i) for i in ids}
    bad = {i: s for i, s in states.items() if s != "RUNNING"}
    assert not bad, f"instances not RUNNING: {bad}"


def sigkill_worker_wait(
    stack: AirflowStack, enos: EnOSEmulator, dag_id: str, flow_id: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """SIGKILL the task process of a wait in a worker (no ``on_kill`` runs); Airflow retries the task;
    the retry must wait on the same instance and succeed when it does.

    :return: the first try and the final task instance, as the REST API shows them.
    """
    api = stack.api
    stack.wait_dags([dag_id], timeout=120)
    add_flows(enos, [flow_id])
    run_id = api.trigger(dag_id, {"flow_id": flow_id})
    first = api.wait_task_state(dag_id, run_id, "start", ["running"], timeout=120)
    [flow_inst_id] = wait_instances(enos, [flow_id], timeout=60)
    wait_reads(enos, flow_inst_id, more_than=0, timeout=60)  # the first try is in its wait loop
    process = wait_for("the task process", lambda: task_process(stack, first["id"]), 30)

    sigkill(process, "the task process")

    retry = wait_for(
        "the retry to run",
        lambda: (
            (ti := api.task_instance(dag_id, run_id, "start"))["try_number"] == 2
            and ti["state"] == "running"
            and ti
        ),
        180,
        describe=lambda: str(
            {k: api.task_instance(dag_id, run_id, "start")[k] for k in ("state", "try_number")}
        ),
    )
    reads = requests_for(enos, GET, flow_inst_id)
    wait_reads(enos, flow_inst_id, more_than=reads, timeout=60)  # the retry waits on that instance
    assert instances_of(enos, flow_id) == [flow_inst_id]
    assert len(triggers_of(enos, flow_id)) == 1
    assert status(enos, flow_inst_id) == "RUNNING"
    assert requests_for(enos, CANCEL, flow_inst_id) == 0  # no on_kill ran, nor did the retry cancel

    enos.state.set_instance_status(flow_inst_id, "SUCCESS")

    ti = api.wait_task_state(dag_id, run_id, "start", ["success", "failed"], timeout=90)
    assert (ti["state"], ti["try_number"]) == ("success", 2), retry
    assert api.xcom(dag_id, run_id, "start") == flow_inst_id
    assert instances_of(enos, flow_id) == [flow_inst_id]
    assert len(triggers_of(enos, flow_id)) == 1
    assert requests_for(enos, CANCEL, flow_inst_id) == 0
    assert api.wait_run_state(dag_id, run_id, FINAL_RUN_STATES, timeout=60) == "success"
    return first, ti


# ----------------------------------------------------------------- the many-waits run


MANY_WAITS = "e2e_enos_many_waits"
#: Stack settings for a run of hundreds of waits: room to run them, and their states on one API page.
MANY_WAITS_ENV = {"AIRFLOW__CORE__PARALLELISM": "16", "AIRFLOW__API__MAXIMUM_PAGE_LIMIT": "1000"}


def start_many_waits(
    stack: AirflowStack, enos: EnOSEmulator, deferred: list[int], in_worker: list[int], timeout: float
) -> tuple[str, list[str]]:
    """Run ``e2e_enos_many_waits`` over these flows and wait until every wait polls its instance.

    :return: the run id and the instance ids, deferred flows first.
    """
    stack.wait_dags([MANY_WAITS], timeout=120)
    flows = deferred + in_worker
    add_flows(enos, flows)
    run_id = stack.api.trigger(MANY_WAITS, {"deferred": deferred, "in_worker": in_worker})
    ids = wait_instances(enos, flows, timeout=timeout)
    wait_mapped(stack, MANY_WAITS, run_id, "deferred", ["deferred"], len(deferred), timeout=300)
    if in_worker:
        wait_mapped(stack, MANY_WAITS, run_id, "in_worker", ["running"], len(in_worker), timeout=120)
    wait_all_read_again(enos, ids, reads_by_instance(enos), timeout=120)
    return run_id, ids
