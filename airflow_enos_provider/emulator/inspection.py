"""Read-only views of the emulated tenant for people and scripts outside the test process.

Served over HTTP under :data:`PREFIX` (``GET /_emulator/instances``, ``GET /_emulator/instances/<id>``,
``GET /_emulator/requests``) and printed by ``python -m airflow_enos_provider.emulator instances URL``
and ``... requests URL``. EnOS paths start with a
service name (``/apim-token-service/``, ``/batch-processing-service/``), and none with an underscore, so
the prefix can never shadow an EnOS call. These requests need no token, change nothing, take no fault
and are not recorded in :attr:`EmulatorState.requests`: they are not EnOS traffic.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from airflow_enos_provider.emulator.models import STATUS_NAMES
from airflow_enos_provider.emulator.recorder import RecordedRequest
from airflow_enos_provider.emulator.state import EmulatorState

__all__ = [
    "INSTANCES",
    "PREFIX",
    "REQUESTS",
    "SIGNATURE_FIELDS",
    "answer",
    "instance_view",
    "is_inspection",
    "request_view",
]

PREFIX = "/_emulator"
INSTANCES = PREFIX + "/instances"
REQUESTS = PREFIX + "/requests"
# What proves a caller's secret: the token request's ``encryption`` (SHA-256 over the secret) and a
# refresh's live ``accessToken`` (the log keeps it as "***"). Signatures travel in headers, which the
# log never keeps; a query or body field of one of these names is shown as "***".
SIGNATURE_FIELDS = frozenset({"encryption", "accessToken", "sign", "signature"})


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


def _unsigned(fields: dict[str, Any] | None) -> dict[str, Any] | None:
    if fields is None:
        return None
    return {name: "***" if name in SIGNATURE_FIELDS else value for name, value in fields.items()}


def request_view(index: int, request: RecordedRequest) -> dict[str, Any]:
    """Return what a script may see of one received EnOS request: never a header, token or signature.

    :param index: its place in the log, from 1.
    :param request: the recorded request.
    """
    return {
        "index": index,
        "method": request.method,
        "path": request.path,
        "action": request.query.get("action"),
        "operation": request.operation,
        "query": _unsigned(request.query),
        "body": _unsigned(request.body),
        "http_status": request.http_status,
        "code": request.code,
        "fault": request.fault,
    }


def answer(state: EmulatorState, method: str, path: str) -> tuple[int, dict[str, Any]]:
    """Return the HTTP status and JSON body for a request under :data:`PREFIX`.

    :param state: the emulator's state.
    :param method: the HTTP method; only GET is answered, anything else is 405.
    :param path: the URL path without the query or a trailing slash.
    """
    if method != "GET":
        return 405, {"message": f"{PREFIX} is read-only: only GET is answered"}
    if path == REQUESTS:
        views = [request_view(n, r) for n, r in enumerate(state.requests, start=1)]
        return 200, {"now_ms": state.now_ms(), "requests": views}
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
    return 404, {"message": f"unknown inspection path {path!r}; try GET {INSTANCES} or GET {REQUESTS}"}
