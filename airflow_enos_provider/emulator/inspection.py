"""Read-only views of the emulated tenant for people and scripts outside the test process.

Served over HTTP under :data:`PREFIX` (``GET /_emulator/instances``, ``GET /_emulator/instances/<id>``)
and printed by ``python -m airflow_enos_provider.emulator instances URL``. EnOS paths start with a
service name (``/apim-token-service/``, ``/batch-processing-service/``), and none with an underscore, so
the prefix can never shadow an EnOS call. These requests need no token, change nothing, take no fault
and are not recorded in :attr:`EmulatorState.requests`: they are not EnOS traffic.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from airflow_enos_provider.emulator.models import STATUS_NAMES
from airflow_enos_provider.emulator.state import EmulatorState

PREFIX = "/_emulator"
INSTANCES = PREFIX + "/instances"


def is_inspection(path: str) -> bool:
    """Return whether a request path is under the reserved prefix.

    :param path: the URL path without the query.
    """
    return path == PREFIX or path.startswith(PREFIX + "/")


def instance_view(state: EmulatorState, instance_id: str) -> dict[str, Any]:
    """Return one instance's id, flow, status and status history (times in epoch ms).

    :param state: the emulator's state.
    :param instance_id: an existing instance id.
    """
    with state.lock:
        flow_instance = state.instance(instance_id)
        history = state.status_history(instance_id)
    return {
        "instance_id": instance_id,
        "flow_id": flow_instance["flowId"],
        "flow_name": flow_instance["flowName"],
        "status": STATUS_NAMES[flow_instance["status"]],
        "status_code": flow_instance["status"],
        "history": [{"time_ms": int(when * 1000), "status": name} for when, name in history],
    }


def answer(state: EmulatorState, method: str, path: str) -> tuple[int, dict[str, Any]]:
    """Return the HTTP status and JSON body for a request under :data:`PREFIX`.

    :param state: the emulator's state.
    :param method: the HTTP method; only GET is answered, anything else is 405.
    :param path: the URL path without the query or a trailing slash.
    """
    if method != "GET":
        return 405, {"message": f"{PREFIX} is read-only: only GET is answered"}
    if path == INSTANCES:
        with state.lock:
            views = [instance_view(state, instance_id) for instance_id in state.instance_ids()]
            return 200, {"now_ms": state.now_ms(), "instances": views}
    if path.startswith(INSTANCES + "/"):
        instance_id = unquote(path[len(INSTANCES) + 1 :])
        with state.lock:
            if instance_id not in state.instance_ids():
                return 404, {"message": f"no flow instance {instance_id!r} in the emulator"}
            return 200, {"now_ms": state.now_ms(), "instance": instance_view(state, instance_id)}
    return 404, {"message": f"unknown inspection path {path!r}; try GET {INSTANCES}"}
