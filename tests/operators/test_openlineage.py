"""OpenLineage: the ``enosFlow`` run facet both operators return, and the parent run a trigger task
sends to its flow (``openlineage_inject_parent``), against the emulator; both in a real
``airflow dags test`` run (SQLite) whose OpenLineage events go to OpenLineage's file transport."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from airflow_enos_provider.exceptions import EnOSFlowInstanceError, EnOSValidationError
from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator, EnOSTriggerFlowOperator
from tests import enos_env as env
from tests.airflow_cli import airflow_cli
from tests.operators.test_reattach_dag import DAGS, FLOW_ID, instances, live_emulator  # noqa: F401
from tests.test_example_dags import airflow_db  # noqa: F401 - the migrated database, as a fixture

try:
    import airflow.providers.openlineage  # noqa: F401

    HAS_OPENLINEAGE = True
except ImportError:
    HAS_OPENLINEAGE = False

needs_openlineage = pytest.mark.skipif(
    not HAS_OPENLINEAGE,
    reason="apache-airflow-providers-openlineage (the openlineage extra) is not installed in this lane; "
    "make test installs it",
)
CONSOLE = "https://console.example/{org_id}/flows/{flow_id}/instances/{flow_inst_id}"
PARENT_KEYS = ["OPENLINEAGE_CONTEXT", "OPENLINEAGE_PARENT_ID", "OPENLINEAGE_ROOT_PARENT_ID"]


def console(flow_id: int, flow_inst_id: str) -> str:
    return f"https://console.example/{env.ORG_ID}/flows/{flow_id}/instances/{flow_inst_id}"


def task_instance() -> SimpleNamespace:
    # Only XCom and start_date are read by a trigger task run outside a DAG run.
    return SimpleNamespace(start_date=None, map_index=-1, xcom_push=lambda key, value: None)


def facet_on(op, state: str) -> dict:
    """Return the operator's run facet as OpenLineage's listener gets it (its default extractor), sent."""
    from airflow.providers.openlineage.extractors.base import DefaultExtractor
    from openlineage.client.serde import Serde

    extractor = DefaultExtractor(op)
    extract = extractor.extract_on_complete if state == "success" else extractor.extract_on_failure
    lineage = extract(None)
    assert lineage.inputs == [] and lineage.outputs == [] and list(lineage.run_facets) == ["enosFlow"]
    facet = Serde.to_dict(lineage.run_facets["enosFlow"])
    assert facet.pop("_schemaURL").endswith("docs/howto/lineage.rst#the-enosflow-run-facet")
    assert facet.pop("_producer")
    return facet


@needs_openlineage
@pytest.mark.enos_connection(console_url=CONSOLE)
@pytest.mark.parametrize("end", ["SUCCESS", "FAIL"])
def test_the_trigger_task_facet_names_its_instance_as_the_replies_showed_it(enos_conn, end):
    env.finish_when_read(enos_conn.state, end)
    op = EnOSTriggerFlowOperator(task_id="start", flow_id=env.IDLE_FLOW_ID, poll_interval=0.01)
    if end == "SUCCESS":
        flow_inst_id = op.execute(context={"ti": task_instance()})
    else:
        with pytest.raises(EnOSFlowInstanceError):
            op.execute(context={"ti": task_instance()})
        (flow_inst_id,) = [i for i in enos_conn.state.instance_ids() if i.startswith(f"{env.IDLE_FLOW_ID}-")]
    (trigger,) = [r.body for r in enos_conn.state.requests if r.operation == "flows.trigger"]
    when = datetime.fromtimestamp(trigger["triggerTime"] / 1000, tz=UTC)  # the emulator's zone is GMT+0
    assert facet_on(op, "success" if end == "SUCCESS" else "failed") == {
        "action": "trigger",
        "flowId": env.IDLE_FLOW_ID,
        "flowName": "hourly_export",
        "flowInstanceIds": [flow_inst_id],
        "statuses": {flow_inst_id: end},
        "triggerTime": when.isoformat(timespec="seconds"),
        "triggerTimeMs": trigger["triggerTime"] // 1000 * 1000,  # to the second, as EnOS records it
        "businessDate": (when.date() - timedelta(days=1)).isoformat(),
        "consoleUrl": console(env.IDLE_FLOW_ID, flow_inst_id),
    }


@needs_openlineage
@pytest.mark.enos_connection(console_url=CONSOLE)
def test_the_cancel_task_facet_names_the_instances_and_their_final_status(enos_conn):
    op = CancelFlowInstanceOperator(
        task_id="cancel", flow_inst_id=env.RUNNING_ID, wait_for_termination=True, poll_interval=0.01
    )
    op.execute(context={})
    assert facet_on(op, "success") == {
        "action": "cancel",
        "flowId": env.FLOW_ID,  # the flow all the instances belong to (an id is the flow id, a dash, a time)
        "flowName": "daily_load",
        "flowInstanceIds": [env.RUNNING_ID],
        "statuses": {env.RUNNING_ID: "CANCEL"},
        "consoleUrl": console(env.FLOW_ID, env.RUNNING_ID),
    }


@needs_openlineage
@pytest.mark.parametrize("key", PARENT_KEYS)
def test_a_user_parameter_with_a_parent_key_is_an_error_before_any_request(enos_conn, key):
    op = EnOSTriggerFlowOperator(
        task_id="start", flow_id=env.IDLE_FLOW_ID, parameters={key: "mine"}, openlineage_inject_parent=True
    )
    with pytest.raises(EnOSValidationError, match=rf"parameters: key '{key}' is also one openlineage_inject"):
        op.execute(context={"ti": task_instance()})
    assert enos_conn.state.requests == []


def test_inject_parent_without_openlineage_fails_before_any_request(enos_conn, monkeypatch):
    for name in ("airflow.providers.openlineage", "openlineage", "airflow_enos_provider._lineage"):
        monkeypatch.setitem(sys.modules, name, None)  # an import of it now fails, as when not installed
    op = EnOSTriggerFlowOperator(task_id="start", flow_id=env.IDLE_FLOW_ID, openlineage_inject_parent=True)
    with pytest.raises(EnOSValidationError, match=r"needs apache-airflow-providers-openlineage"):
        op.execute(context={"ti": task_instance()})
    assert enos_conn.state.requests == []


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"retry_from_failure": True}, "retry_from_failure"), ({"start_task_id": "8001"}, "start_task_id")],
)
def test_inject_parent_with_a_start_task_is_refused_when_the_dag_is_parsed(kwargs, named):
    refused = rf"openlineage_inject_parent cannot be combined with {named}"
    with pytest.raises(EnOSValidationError, match=refused):
        EnOSTriggerFlowOperator(task_id="start", flow_id=1, openlineage_inject_parent=True, **kwargs)


def test_the_operators_import_no_openlineage_and_work_without_it():
    code = (
        "import sys\n"
        "sys.modules['openlineage'] = None  # OpenLineage's client cannot be imported\n"
        "from airflow_enos_provider.operators.flow_instance import EnOSTriggerFlowOperator\n"
        "EnOSTriggerFlowOperator(task_id='t', flow_id=1, openlineage_inject_parent=True)\n"
        "print('imported')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    # The last line: Airflow 3.0 prints its log lines to stdout ahead of it.
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "imported", done.stderr[-2000:]
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; import airflow_enos_provider.operators.flow_instance; "
            # Airflow's providers manager reads each provider's get_provider_info, nothing else.
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'openlineage' or "
            "m.startswith('airflow.providers.openlineage.') and not m.endswith('.get_provider_info')))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0 and loaded.stdout.splitlines()[-1] == "[]", loaded.stderr[-2000:]


@needs_openlineage
def test_a_real_run_sends_its_lineage_run_to_the_flow_and_its_facet_to_openlineage(live_emulator, tmp_path):  # noqa: F811
    # `airflow dags test` with OpenLineage on, its file transport recording what the listener sends.
    events = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    environ = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "enos-test",
    }
    conf = json.dumps({"flow_id": FLOW_ID})
    done = airflow_cli("dags", "test", "enos_lineage_parent", "-c", conf, env=environ, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    sent = {(e["eventType"], e["job"]["name"]): e for e in map(json.loads, events.read_text().splitlines())}
    task_run = sent[("START", "enos_lineage_parent.start")]["run"]["runId"]
    dag_run = sent[("COMPLETE", "enos_lineage_parent")]["run"]["runId"]

    # EnOS got the user's parameter untouched, then the task's run as OpenLineage sent it.
    (call,) = [r for r in live_emulator.state.requests if r.operation == "flows.updateAndTrigger"]
    parameters = {p["key"]: p["value"] for p in call.body["parameters"]}
    assert list(parameters) == ["REPLACE", *PARENT_KEYS] and parameters["REPLACE"] == "ddee"
    assert json.loads(parameters["OPENLINEAGE_CONTEXT"]) == {
        "parent": {
            "run": {"runId": task_run},
            "job": {"namespace": "enos-test", "name": "enos_lineage_parent.start"},
            "root": {
                "run": {"runId": dag_run},
                "job": {"namespace": "enos-test", "name": "enos_lineage_parent"},
            },
        }
    }
    assert parameters["OPENLINEAGE_PARENT_ID"] == f"enos-test/enos_lineage_parent.start/{task_run}"
    assert parameters["OPENLINEAGE_ROOT_PARENT_ID"] == f"enos-test/enos_lineage_parent/{dag_run}"
    (flow_inst_id,) = instances(live_emulator)
    assert json.loads(live_emulator.state.get_instance(env.USER_ID, flow_inst_id)["parameters"]) == [
        {"key": key, "value": value} for key, value in parameters.items()
    ]

    # The task's COMPLETE event carries the instance's facet.
    facet = sent[("COMPLETE", "enos_lineage_parent.start")]["run"]["facets"]["enosFlow"]
    when = datetime.fromtimestamp(call.body["triggerTime"] / 1000, tz=UTC)
    assert {k: v for k, v in facet.items() if not k.startswith("_")} == {
        "action": "trigger",
        "flowId": FLOW_ID,
        "flowName": f"flow_{FLOW_ID}",
        "flowInstanceIds": [flow_inst_id],
        "statuses": {flow_inst_id: "SUCCESS"},
        "triggerTime": when.isoformat(timespec="seconds"),
        "triggerTimeMs": call.body["triggerTime"] // 1000 * 1000,
        "businessDate": (when.date() - timedelta(days=1)).isoformat(),
    }  # no consoleUrl: this connection has no console_url
