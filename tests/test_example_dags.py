"""Both example DAGs run through a real Airflow (dag.test, SQLite) against the emulator."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from airflow_enos_provider.status import EnOSFlowInstanceStatus as S
from tests import enos_env as env
from tests.airflow_cli import airflow_cli, fresh_airflow_env, python_module
from tests.conftest import AIRFLOW_HOME, ROOT


@pytest.fixture(scope="module")
def airflow_db():
    done = airflow_cli("db", "migrate", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


# Real clock for the plugin's emulator: Airflow's own pace decides what EnOS sees, as in production.
pytestmark = pytest.mark.enos_emulator(clock=None)


@pytest.fixture
def live_emulator(airflow_db, emulator, enos_connection, monkeypatch):
    monkeypatch.setenv("ENOS_EXAMPLE_POLL_SECONDS", "0.2")
    return emulator


def add_flow(emulator, flow_id: int, run_seconds: float) -> int:
    emulator.state.add_flow(
        flow_id, name=f"flow_{flow_id}", owner=env.USER_ID, init_seconds=0, run_seconds=run_seconds
    )
    return flow_id


def started_instance(emulator, flow_id: int) -> str:
    (instance_id,) = [i for i in emulator.state.instance_ids() if i.startswith(f"{flow_id}-")]
    return instance_id


def run_example(dag_id: str, conf: dict | None = None):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.1
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "example_dags"))
    assert not bag.import_errors
    run = bag.get_dag(dag_id).test(run_conf=conf)
    return run, {ti.task_id: ti.state for ti in run.get_task_instances()}


def finished_link(run, dag_id: str, task_id: str) -> str | None:
    """Return the "EnOS flow instance" link of a finished task instance, as the UI gets it."""
    from airflow_enos_provider._compat import airflow_version

    ti = run.get_task_instance(task_id)
    if not airflow_version().startswith("2."):  # Airflow 3 stores each link in XCom as the task ends
        return ti.xcom_pull(task_ids=task_id, key="_link_EnOSFlowInstanceLink")
    # Airflow 2's webserver asks the operator's link for each request
    from airflow.models.dagbag import DagBag

    from airflow_enos_provider.links import EnOSFlowInstanceLink

    operator = DagBag(dag_folder=str(ROOT / "example_dags")).get_dag(dag_id).get_task(task_id)
    return EnOSFlowInstanceLink().get_link(operator, ti_key=ti.key)


def test_cancel_flow_instance_from_params(live_emulator):
    run, states = run_example("example_enos_cancel_flow_instance", {"flow_inst_id": env.RUNNING_ID})
    assert run.state == "success" and states == {"cancel_flow_instance": "success"}
    assert live_emulator.state.instance_status(env.RUNNING_ID) == S.CANCEL


def test_readme_quickstart_cancels_the_instance_given_as_conf(live_emulator):
    run, states = run_example("example_enos_quickstart", {"flow_inst_id": env.RUNNING_ID})
    assert run.state == "success" and states == {"cancel": "success"}
    assert live_emulator.state.instance_status(env.RUNNING_ID) == S.CANCEL


def test_cancel_a_list_from_params(live_emulator):
    ids = [env.RUNNING_ID, env.SUCCEEDED_ID]
    run, _ = run_example("example_enos_cancel_flow_instance", {"flow_inst_id": ids})
    assert run.state == "success"
    assert [live_emulator.state.instance_status(i) for i in ids] == [S.CANCEL, S.SUCCESS]


def test_cancel_on_failure_teardown_cancels_and_the_run_stays_failed(live_emulator):
    run, states = run_example("example_enos_cancel_on_failure", {"flow_id": env.IDLE_FLOW_ID})
    assert run.state == "failed"
    assert states == {"start_flow": "success", "transform": "failed", "cancel_flow_instance": "success"}
    (started,) = [i for i in live_emulator.state.instance_ids() if i.startswith(f"{env.IDLE_FLOW_ID}-")]
    assert live_emulator.state.instance_status(started) == S.CANCEL
    cancels = [r for r in live_emulator.state.requests if r.operation == "flowInstances.cancel"]
    assert [r.body for r in cancels] == [{"flowInstId": started}]


def test_start_and_wait_in_a_worker_deferred_and_by_name(live_emulator, monkeypatch):
    template = "https://console.example/{org_id}/flows/{flow_id}/instances/{flow_inst_id}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(live_emulator.url, console_url=template)
    )
    state = live_emulator.state
    flows = {
        "flow_id": add_flow(live_emulator, 501, 0.5),
        "deferred_flow_id": add_flow(live_emulator, 502, 0.5),
    }
    # The flow named is busy: its run ends once the waiting task has read it; a flow whose name
    # contains the name is not it.
    add_flow(live_emulator, 503, 0.5)
    state.add_flow(504, name="flow_503_copy", owner=env.USER_ID)
    busy = state.add_instance("503-202612030000", 503, status="RUNNING")

    def end_once_read() -> None:
        if any(r.query.get("flowInstId") == busy for r in state.requests):
            state.set_instance_status(busy, "SUCCESS")
        else:
            state.after("flowInstances.get", end_once_read)

    state.after("flowInstances.get", end_once_read)
    run, states = run_example("example_enos_trigger_flow", {**flows, "flow_name": "flow_503"})
    assert run.state == "success" and states == dict.fromkeys(
        ("run_flow", "run_flow_deferred", "run_flow_by_name"), "success"
    )
    by_name = next(i for i in state.instance_ids() if i.startswith("503-") and i != busy)
    for flow_inst_id in (*(started_instance(live_emulator, f) for f in flows.values()), by_name):
        assert state.instance_status(flow_inst_id) == S.SUCCESS
    assert "WAIT" not in [status for _, status in state.status_history(by_name)]  # triggered after it ended
    ti = run.get_task_instance("run_flow_deferred")
    assert ti.xcom_pull(task_ids="run_flow_deferred", key="flow_inst_id") == started_instance(
        live_emulator, 502
    )
    # The "EnOS flow instance" link each finished task instance got (what the UI's button opens).
    for task_id, flow_id in (("run_flow", 501), ("run_flow_deferred", 502)):
        link = finished_link(run, "example_enos_trigger_flow", task_id)
        instance = started_instance(live_emulator, flow_id)
        assert link == f"https://console.example/{env.ORG_ID}/flows/{flow_id}/instances/{instance}"


def fail_when_started(emulator, flow_ids: list[int]) -> threading.Thread:
    """Fail each flow's instance as soon as Airflow has started it (the flows run for an hour)."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        pending = set(flow_ids)
        while pending and time.monotonic() < deadline:
            for instance_id in emulator.state.instance_ids():
                flow_id = int(instance_id.split("-", 1)[0])
                if flow_id in pending:
                    emulator.state.set_instance_status(instance_id, "FAIL")
                    pending.discard(flow_id)
            time.sleep(0.05)  # polling the emulator's state, not standing in for an event

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def test_a_failed_flow_fails_the_task_with_its_failed_tasks_log(live_emulator, capfd):
    from airflow_enos_provider._status import task_records
    from airflow_enos_provider.hooks.enos import EnOSHook

    log = "2026-12-02 03:00:01 INFO reading s3://lake/raw\n2026-12-02 03:00:09 ERROR column 'kwh' not found\n"
    for flow_id in (507, 508, 509):
        live_emulator.state.add_flow(
            flow_id,
            owner=env.USER_ID,
            init_seconds=0,
            run_seconds=3600,
            tasks=[{"name": "transform", "log": log}],
        )
    watcher = fail_when_started(live_emulator, [507, 508, 509])
    conf = {"flow_id": 507, "deferred_flow_id": 508, "flow_name": "flow_509"}
    run, states = run_example("example_enos_trigger_flow", conf)
    watcher.join(timeout=5)
    assert run.state == "failed"
    assert states == dict.fromkeys(("run_flow", "run_flow_deferred", "run_flow_by_name"), "failed")
    out = capfd.readouterr().out
    words = " ".join(out.split())  # Airflow 3.0 prints the error in a traceback wrapped at 80 columns
    for flow_id in (507, 508, 509):
        instance_id = started_instance(live_emulator, flow_id)
        (transform,) = task_records(EnOSHook().get_flow_instance(instance_id))
        task_inst_id = transform.task_inst_id
        title = f"EnOS task transform (task instance {task_inst_id}, FAIL)"
        assert f"----- {title} of flow instance {instance_id}: its whole log -----\n{log.rstrip()}" in out
        error = (
            f"EnOS flow instance ended badly: {instance_id} is FAIL (failed tasks: transform)\n"
            f"Last lines of the log of {title}:\n{log}"
        )
        assert " ".join(error.split()) in words


def test_failure_callbacks_cancel_and_the_run_stays_failed(live_emulator):
    flow_id = add_flow(live_emulator, 503, 3600)
    run, states = run_example("example_enos_cancel_on_failure_callback", {"flow_id": flow_id})
    assert run.state == "failed" and states == {"start_flow": "success", "transform": "failed"}
    assert live_emulator.state.instance_status(started_instance(live_emulator, flow_id)) == S.CANCEL
    assert [r.code for r in live_emulator.state.requests if r.operation == "flowInstances.cancel"] == [0]


def test_execution_timeout_cancels_the_instance_in_a_worker_and_deferred(live_emulator, monkeypatch):
    monkeypatch.setenv("ENOS_EXAMPLE_TIMEOUT_SECONDS", "2")
    flows = {
        "flow_id": add_flow(live_emulator, 504, 3600),
        "deferred_flow_id": add_flow(live_emulator, 505, 3600),
    }
    run, states = run_example("example_enos_timeout_cancels", flows)
    assert run.state == "failed" and states == {"run_flow": "failed", "run_flow_deferred": "failed"}
    for task_id, flow_id in zip(("run_flow", "run_flow_deferred"), flows.values(), strict=True):
        instance_id = started_instance(live_emulator, flow_id)
        assert live_emulator.state.instance_status(instance_id) == S.CANCEL
        # pushed before the wait began, so it is there although the task failed
        ti = run.get_task_instance(task_id)
        assert ti.xcom_pull(task_ids=task_id, key="flow_inst_id") == instance_id


def test_sensor_waits_for_an_instance_started_elsewhere(live_emulator, capfd):
    from airflow_enos_provider.hooks.enos import EnOSHook

    add_flow(live_emulator, 506, 1.0)
    instance_id = EnOSHook().trigger_flow(506).flow_inst_id  # "another system" starts it
    run, states = run_example("example_enos_flow_instance_sensor", {"flow_inst_id": instance_id})
    assert run.state == "success", states
    assert set(states.values()) == {"success"}
    assert live_emulator.state.instance_status(instance_id) == S.SUCCESS
    # Without a console_url extra: no link, and no attempt to read one.
    link = run.get_task_instance("wait_for_flow_instance").xcom_pull(
        task_ids="wait_for_flow_instance", key="_link_EnOSFlowInstanceLink"
    )
    assert not link
    assert "XCom not found" not in capfd.readouterr().out


def test_sensor_fails_early_when_the_instance_fails(live_emulator, capfd):
    from airflow_enos_provider._status import task_records
    from airflow_enos_provider.hooks.enos import EnOSHook

    live_emulator.state.set_instance_status(env.RUNNING_ID, "FAIL")
    load = task_records(EnOSHook().get_flow_instance(env.RUNNING_ID))[1]
    live_emulator.state.set_task_log(load.task_inst_id, "loading\nERROR: disk full on /data\n")
    run, states = run_example("example_enos_flow_instance_sensor", {"flow_inst_id": env.RUNNING_ID})
    assert run.state == "failed"
    assert (
        states["wait_for_flow_instance"] == "failed" and states["wait_for_flow_instance_deferred"] == "failed"
    )
    # dag.test() prints the task logs; the sensor's two ways of waiting show the same.
    out = capfd.readouterr().out
    words = " ".join(out.split())  # Airflow 3.0 prints the error in a traceback wrapped at 80 columns
    header = (
        f"----- EnOS task load (task instance {load.task_inst_id}, FAIL) of flow instance {env.RUNNING_ID}: "
        "its whole log -----\nloading\nERROR: disk full on /data"
    )
    assert out.count(header) >= 2, out[-3000:]  # 2.11 and 3.0 print each line twice
    error = (
        f"EnOSFlowInstanceError: EnOS flow instance ended badly: {env.RUNNING_ID} is FAIL (failed tasks: "
        f"load)\nLast lines of the log of EnOS task load (task instance {load.task_inst_id}, FAIL):\n"
        "loading\nERROR: disk full on /data\n"
    )
    assert words.count(" ".join(error.split())) >= 2, out[-3000:]  # 2.11 prints it twice per task


def test_kill_switch_cancels_every_active_instance_of_the_flow(live_emulator):
    waiting = live_emulator.state.add_instance("2438-201908091020", env.FLOW_ID, status="WAIT")
    run, states = run_example("example_enos_kill_switch", {"flow_id": env.FLOW_ID})
    assert run.state == "success" and states == {"cancel_all_active": "success"}
    assert [live_emulator.state.instance_status(i) for i in (env.RUNNING_ID, waiting, env.SUCCEEDED_ID)] == [
        S.CANCEL,
        S.CANCEL,
        S.SUCCESS,
    ]
    xcom = run.get_task_instance("cancel_all_active").xcom_pull(task_ids="cancel_all_active")
    assert xcom == {
        env.RUNNING_ID: {"outcome": "cancelled", "status": "CANCEL"},
        waiting: {"outcome": "cancelled", "status": "CANCEL"},
    }


def test_the_testing_page_example_passes_in_a_users_project(airflow_db, tmp_path):
    # docs/testing.rst's layout: the DAG in dags/, the test in tests/, pytest run from the project
    # root as a user runs it, loading the plugin from the page's top-level conftest.py (none of ours).
    project = tmp_path / "project"
    (project / "dags").mkdir(parents=True)
    (project / "tests").mkdir()
    shutil.copy(ROOT / "example_dags" / "example_enos_quickstart.py", project / "dags")
    shutil.copy(ROOT / "docs" / "examples" / "test_quickstart_dag.py", project / "tests")
    shutil.copy(ROOT / "docs" / "examples" / "conftest.py", project)
    # The suite's AIRFLOW_HOME, migrated by airflow_db: the page's `airflow db migrate` step, done.
    user_env = {**fresh_airflow_env(AIRFLOW_HOME), "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags")}
    done = python_module(
        "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=project, env=user_env, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout


@pytest.mark.parametrize(
    ("active_before", "repair_ends", "run_state"),
    [(True, "SUCCESS", "success"), (True, "FAIL", "failed"), (False, "SUCCESS", "success")],
)
def test_maintenance_window_pauses_and_restores_the_schedule_as_it_was(
    live_emulator, active_before, repair_ends, run_state
):
    state = live_emulator.state
    state.add_flow(503, owner=env.USER_ID, init_seconds=0, run_seconds=0.5, end_status=repair_ends)
    state.set_flow_active(env.FLOW_ID, active_before)
    # What the schedule was while the repair flow was triggered: the trigger reads nothing else.
    during = []
    state.after("flows.trigger", lambda: during.append(state.flow(env.FLOW_ID)["active"]))
    run, states = run_example(
        "example_enos_maintenance_window", {"flow_id": env.FLOW_ID, "repair_flow_id": 503}
    )
    assert run.state == run_state
    assert states == {
        "pause_schedule": "success",
        "repair": "success" if repair_ends == "SUCCESS" else "failed",
        "resume_schedule": "success",
    }
    assert during == [0]
    assert state.flow(env.FLOW_ID)["active"] == int(active_before)
    # Idempotent both ways: a paused schedule gets neither a disable nor an enable.
    assert state.count("flows.disable") == state.count("flows.enable") == int(active_before)
    resumed = run.get_task_instance("resume_schedule").xcom_pull(task_ids="resume_schedule")
    assert resumed == {
        "flow_id": env.FLOW_ID,
        "was_active": False,
        "active": active_before,
        "changed": active_before,
    }
