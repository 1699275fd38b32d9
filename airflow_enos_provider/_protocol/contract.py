"""The documented EnOS contract, as data: each operation the project uses, once.

The hook builds its requests from these rows (:mod:`~airflow_enos_provider._protocol.operations`),
the emulator refuses a request that breaks them the way EnOS documents (62102), and the tests check
that every request the hook can build keeps them. Each row names the page it comes from: the
vendor's doc sources (GitHub ``EnvisionDoc/api_en``, folder ``dataflow_service/v2.1/``) or, for the
two operations that have no page there, ``enos-api.md`` section 3.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from airflow_enos_provider._protocol.codes import BATCH_PATH, TOKEN_PATH
from airflow_enos_provider._status import ALL_STATUSES

DOCS = "EnvisionDoc/api_en dataflow_service/v2.1/"
TOKEN_DOCS = "EnvisionDoc/api_en token/ (enos-api.md section 1a)"
NOT_IN_DOCS = "enos-api.md section 3 (no page in " + DOCS + ")"
#: The newer pages on the vendor's support site (batch-processing-api docs 2.2.0-3.0.0, v2.1 API).
SUPPORT_DOCS = "support.enos-iot.com batch-processing-api 2.2.0-3.0.0, v2.1/"


class Kind(Enum):
    """A field's documented data type, and what a value of it looks like in JSON."""

    STRING = "String"
    INTEGER = "Integer"
    LONG = "Long"
    STATUS_LIST = "String of comma-separated status codes"
    KEY_VALUES = "Array of {key, value} objects"
    PAGINATION = "Pagination Struct"

    def accepts(self, value: Any, in_query: bool, loose: bool = False) -> bool:
        """Say whether ``value`` is of this kind (a query value is always text on the wire).

        :param value: the value as the request carries it.
        :param in_query: whether it is a query parameter (then numbers are digit strings).
        :param loose: also take the shapes the vendor's own samples send where they disagree with
            the pages' tables (see :func:`loosely`); the emulator answers those, the hook never sends them.
        """
        if loose and not in_query and self.accepts(loosely(self, value), in_query):
            return True
        if in_query:
            if not isinstance(value, str):
                return False
            return value.lstrip("-").isdigit() if self in (Kind.INTEGER, Kind.LONG) else True
        if self in (Kind.INTEGER, Kind.LONG):
            return isinstance(value, int) and not isinstance(value, bool)
        if self is Kind.STATUS_LIST:
            return isinstance(value, str) and all(p.strip().lstrip("-").isdigit() for p in value.split(","))
        if self is Kind.KEY_VALUES:
            return isinstance(value, list) and all(is_wire_parameter(item) for item in value)
        if self is Kind.PAGINATION:
            return isinstance(value, Mapping) and _is_pagination(value)
        return isinstance(value, str)


@dataclass(frozen=True)
class Field:
    """One documented request field.

    :param name: its name on the wire.
    :param kind: its documented type.
    :param mandatory: whether the page marks it mandatory.
    """

    name: str
    kind: Kind
    mandatory: bool = True


@dataclass(frozen=True)
class Contract:
    """One documented operation.

    :param name: the provider's name for it (logs, errors, the hook's method).
    :param title: the EnOS page's title.
    :param method: the HTTP method.
    :param path: the path under the gateway URL.
    :param action: the ``action`` query parameter; None for the token service.
    :param query: query fields besides ``action``, ``userId`` and ``orgId`` (which every Batch call has).
    :param body: body fields; empty for a call without a body.
    :param reply: the shape of the reply's ``data``.
    :param page: where the contract is written.
    :param idempotent: whether repeating it after a lost reply is safe (triggers start new work).
    """

    name: str
    title: str
    method: str
    path: str
    action: str | None
    query: tuple[Field, ...] = ()
    body: tuple[Field, ...] = ()
    reply: str = ""
    page: str = ""
    idempotent: bool = True

    @property
    def operation(self) -> str:
        """Return the emulator's name for requests of this operation, e.g. ``flowInstances.cancel``."""
        resource = self.path.rsplit("/", 1)[-1]
        return f"{resource}.{self.action}" if self.action is not None else f"token.{resource}"

    def violations(self, query: Mapping[str, str], body: Any, *, loose: bool = False) -> list[str]:
        """Return what a request breaks of this contract, one line per field; empty when none.

        :param query: the decoded query (``action``, ``userId`` and ``orgId`` included).
        :param body: the decoded JSON body, or None without one.
        :param loose: also take the sample shapes :func:`loosely` knows (the emulator's reading).
        """
        found: list[str] = []
        if self.action is not None:
            for name in ("userId", "orgId"):
                if not query.get(name):
                    found.append(f"query {name}: mandatory String is missing")
        found += _check(self.query, query, "query", in_query=True, loose=loose)
        if self.body:
            if not isinstance(body, Mapping):
                return [*found, "body: a JSON object is expected"]
            found += _check(self.body, body, "body", in_query=False, loose=loose)
        return found


def _check(
    fields: tuple[Field, ...], values: Mapping[str, Any], where: str, in_query: bool, loose: bool
) -> list[str]:
    found = []
    for field in fields:
        # A query name with no value is no value: get_task_instance_log.md's own sample sends
        # "maxLength=" for the optional field (and "flowInstId=" names no instance).
        absent = values.get(field.name) is None or (in_query and values[field.name] == "")
        if absent:
            if field.mandatory:
                found.append(f"{where} {field.name}: mandatory {field.kind.value} is missing")
        elif not field.kind.accepts(values[field.name], in_query, loose):
            found.append(f"{where} {field.name}: expected {field.kind.value}, got {values[field.name]!r:.80}")
    return found


def loosely(kind: Kind, value: Any) -> Any:
    """Return a value the vendor's samples send in another shape than the table says, in the table's.

    ``enos-api.md`` section 4: the samples send numbers as digit strings (``"type": "1"``);
    ``list_flow_instances.md``'s request sample sends ``"status": 1`` (its table: a String such as
    ``"1,2,3"``) and its Java sample ``"status": ""``, read here as every status; the Java sample of
    ``update_and_trigger_flow.md`` sends ``parameters`` as the JSON string of the list, and its table
    calls the field a Map of key=value. Whether EnOS takes these is undocumented, so the emulator
    takes them, while the hook sends the table's shapes (``tests/test_contract.py``).

    :param kind: the documented kind.
    :param value: the value as sent.
    """
    if kind in (Kind.INTEGER, Kind.LONG) and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if kind is Kind.STATUS_LIST:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if value == "":
            return ALL_STATUSES
    if kind is Kind.KEY_VALUES:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return value
        if isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return [{"key": k, "value": v} for k, v in value.items()]
    return value


#: One workflow parameter on the wire: an object of exactly these two strings (update_and_trigger_flow.md).
PARAMETER_FIELDS = frozenset({"key", "value"})


def is_wire_parameter(item: Any) -> bool:
    """Say whether ``item`` is one parameter as EnOS takes it: ``{"key": str, "value": str}``."""
    return (
        isinstance(item, Mapping)
        and set(item) == PARAMETER_FIELDS
        and all(isinstance(item[name], str) for name in PARAMETER_FIELDS)
    )


def _is_pagination(value: Mapping[str, Any]) -> bool:
    def positive(name: str) -> bool:
        number = value.get(name)
        return isinstance(number, int) and not isinstance(number, bool) and number > 0

    sorters = value.get("sorters", [])
    return (
        positive("pageNo")
        and positive("pageSize")
        and isinstance(sorters, list)
        and all(isinstance(s, Mapping) and isinstance(s.get("field"), str) for s in sorters)
    )


_S, _I, _L = Kind.STRING, Kind.INTEGER, Kind.LONG
FLOW_INSTANCE = (
    "FlowInstance: instanceId, flowId, flowName, status (int), statusDesc, times, and parameters and "
    "graph as JSON strings"
)
REFRESH_PATH = TOKEN_PATH.rsplit("/", 1)[0] + "/refresh"
CONTRACTS: tuple[Contract, ...] = (
    Contract(
        "get_access_token", "Get Access Token", "POST", TOKEN_PATH, None,
        body=(Field("appKey", _S), Field("timestamp", _L), Field("encryption", _S)),
        reply="{accessToken, expire (s)} in the v2.0 envelope (status, msg, business)",
        page=TOKEN_DOCS,
    ),
    Contract(
        "refresh_access_token", "Refresh Access Token", "POST", REFRESH_PATH, None,
        body=(Field("appKey", _S), Field("timestamp", _L), Field("encryption", _S), Field("accessToken", _S)),
        reply="{accessToken, expire (s)} in the v2.0 envelope", page=TOKEN_DOCS,
    ),
    Contract(
        "cancel_flow_instance", "Cancel Flow Instance", "POST", BATCH_PATH + "/flowInstances", "cancel",
        body=(Field("flowInstId", _S),), reply='""', page=DOCS + "cancel_flow_instance.md",
    ),
    Contract(
        "get_flow_instance", "Get Flow Instance", "GET", BATCH_PATH + "/flowInstances", "get",
        query=(Field("flowInstId", _S),), reply=FLOW_INSTANCE, page=DOCS + "get_flow_instance.md",
    ),
    Contract(
        "list_flow_instances", "List Flow Instances", "POST", BATCH_PATH + "/flowInstances", "search",
        body=(
            Field("type", _I), Field("expression", _S), Field("owner", _S), Field("fromTriggerTime", _L),
            Field("toTriggerTime", _L), Field("status", Kind.STATUS_LIST),
            Field("pagination", Kind.PAGINATION, mandatory=False),
        ),
        reply="{flowInsts: [FlowInstance], count}", page=DOCS + "list_flow_instances.md",
    ),
    Contract(
        "trigger_flow", "Trigger Flow", "POST", BATCH_PATH + "/flows", "trigger",
        body=(Field("flowId", _I), Field("triggerTime", _L)),
        reply="{flowInstanceId}", page=DOCS + "trigger_flow.md", idempotent=False,
    ),
    Contract(
        "trigger_flow", "Update And Trigger Flow", "POST", BATCH_PATH + "/flows", "updateAndTrigger",
        body=(Field("flowId", _I), Field("triggerTime", _L), Field("parameters", Kind.KEY_VALUES)),
        reply="{flowInstanceId}", page=DOCS + "update_and_trigger_flow.md", idempotent=False,
    ),
    Contract(
        "trigger_flow", "Trigger Flow From Task", "POST", BATCH_PATH + "/flows", "triggerFromTask",
        body=(Field("flowId", _I), Field("taskId", _I), Field("triggerTime", _L)),
        reply="{flowInstanceId}", page=SUPPORT_DOCS + "trigger_flow_from_task", idempotent=False,
    ),
    Contract(
        "get_flow", "Get Flow", "GET", BATCH_PATH + "/flows", "get",
        query=(Field("flowId", _I),),
        reply="Flow: flowId, flowName, active (0 paused, 1 started), type (0 manual, 1 periodic, "
        "2 temporary), parameters (JSON string), graph, locked, isUserLocked",
        page=DOCS + "get_flow.md",
    ),
    # "Stop/Start the scheduling of a specified workflow": the owner, neither user nor flow locked.
    # Repeating either after a lost reply is safe: it sets the schedule's state, it starts nothing.
    Contract(
        "disable_flow", "Disable Flow", "POST", BATCH_PATH + "/flows", "disable",
        body=(Field("flowId", _I),), reply='""', page=DOCS + "disable_flow.md",
    ),
    Contract(
        "enable_flow", "Enable Flow", "POST", BATCH_PATH + "/flows", "enable",
        body=(Field("flowId", _I),), reply='""', page=DOCS + "enable_flow.md",
    ),
    Contract(
        "search_flows", "Search Flow", "POST", BATCH_PATH + "/flows", "search",
        body=(
            Field("expression", _S, mandatory=False), Field("pagination", Kind.PAGINATION, mandatory=False),
        ),
        reply="[{flowId (Integer in the table, a digit string in the samples), flowName}]",
        page=DOCS + "search_flow.md",
    ),
    Contract(
        "get_my_flows", "Get My Flow", "GET", BATCH_PATH + "/flows", "getMyFlow",
        query=(Field("expression", _S, mandatory=False),),
        reply="[{flowId (String), editable, flowName, cycle: M/W/D/H/mi}]", page=DOCS + "get_my_flow.md",
    ),
    Contract(
        "get_server_time", "Get Current Time", "GET", BATCH_PATH + "/time", "getCurrentTime",
        reply="ms since the epoch (UTC)", page=DOCS + "get_current_time.md",
    ),
    Contract(
        "get_time_zone", "Get Timezone", "GET", BATCH_PATH + "/time", "getTimeZone",
        reply='{timezone: "GMT+N"}', page=DOCS + "get_time_zone.md",
    ),
    Contract(
        "get_task_instance", "Get Task Instance", "GET", BATCH_PATH + "/taskInstances", "get",
        query=(Field("taskInstId", _S),),
        reply="a task instance: instanceId, flowInstId, status, times", page=NOT_IN_DOCS,
    ),
    Contract(
        "get_task_instance_log", "Get Task Instance Log", "GET", BATCH_PATH + "/taskInstances", "getLog",
        query=(Field("taskInstId", _S), Field("maxLength", _I, mandatory=False)),
        reply="{log: text}", page=DOCS + "get_task_instance_log.md",
    ),
)  # fmt: skip
_BY_ROUTE = {(c.method, c.path, c.action): c for c in CONTRACTS}


def contract_for(method: str, path: str, action: str | None) -> Contract | None:
    """Return the contract of a request's route, or None for a route the project does not use.

    :param method: the HTTP method.
    :param path: the path (no query).
    :param action: the ``action`` query value, or None for the token service.
    """
    return _BY_ROUTE.get((method, path, action))
