"""Flows by name: Search Flow's and Get My Flow's replies, and the one flow a name stands for.

Both pages (``search_flow.md``, ``get_my_flow.md``) match ``expression`` fuzzily on flow id and
flow name; whether that match ignores case is undocumented, and so is Search Flow's largest page.
So a name is looked up with the name itself as the expression, every page is read (pages are not
trusted to be full: :class:`~.search.Paging` with ``short_page_ends=False``), and the flow is the
one whose name equals the name given, character for character, under either matching rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_enos_provider._protocol import operations as ops
from airflow_enos_provider._protocol.flow import Caller, Flow
from airflow_enos_provider._protocol.operations import Operation
from airflow_enos_provider._protocol.search import Paging
from airflow_enos_provider._validation import require_text
from airflow_enos_provider.exceptions import EnOSAPIError, EnOSFlowNameError

#: Flows per Search Flow page.
FLOW_PAGE_SIZE = 100


def flows_of(data: object, op: Operation) -> list[dict[str, Any]]:
    """Return a flow list reply's flows, each with ``flowId`` as an int and ``flowName`` a string.

    Search Flow's table types ``flowId`` Integer and its samples send ``"21"``; Get My Flow's types
    it String: either is read, anything else is a malformed reply.

    :param data: the reply's ``data`` (an array; null read as empty).
    :param op: the call, for errors.
    """
    if data is None:
        return []
    if not isinstance(data, list):
        raise EnOSAPIError(f"the reply is not a list of flows: {data!r:.200}", operation=op.name)
    flows = []
    for index, item in enumerate(data):
        flow_id = item.get("flowId") if isinstance(item, Mapping) else None
        if isinstance(flow_id, str) and flow_id.isascii() and flow_id.isdigit() and len(flow_id) <= 18:
            flow_id = int(flow_id)
        if not isinstance(flow_id, int) or isinstance(flow_id, bool) or flow_id < 0:
            raise EnOSAPIError(f"flow [{index}] has no flowId of digits: {item!r:.200}", operation=op.name)
        if not isinstance(item.get("flowName"), str):
            raise EnOSAPIError(f"flow [{index}] has no flowName: {item!r:.200}", operation=op.name)
        flows.append({**item, "flowId": flow_id})
    return flows


def search_all_flows(caller: Caller, expression: str) -> Flow[tuple[list[dict[str, Any]], bool]]:
    """Read every page of Search Flow for ``expression``; return the flows and whether the cap ended it.

    :param caller: the hook's caller (sync or async driver alike).
    :param expression: the fuzzy match; ``""`` for every flow.
    """
    paging = Paging(FLOW_PAGE_SIZE, key="flowId", short_page_ends=False)
    found: list[dict[str, Any]] = []
    while paging.ended is None:
        op = ops.search_flows(expression, paging.page_no, FLOW_PAGE_SIZE)
        data = yield from caller.call(op)
        found += paging.take(flows_of(data, op), None)
    return found, paging.ended == "cap"


def lookup_flow(caller: Caller, name: object) -> Flow[int]:
    """Return the id of the one flow named exactly ``name``, found through Search Flow.

    :param caller: the hook's caller.
    :param name: the flow name (checked before any request).
    :raises EnOSFlowNameError: when no flow or several are named exactly ``name``; it lists every
        flow the search found, fuzzy matches included.
    """
    name = require_text(name, "flow_name")
    found, capped = yield from search_all_flows(caller, name)
    if capped:
        caller.log.warning(
            "EnOS Search Flow for %r stopped at its page cap: the gateway kept sending new flows", name
        )
    exact = [flow["flowId"] for flow in found if flow["flowName"] == name]
    if len(exact) != 1:
        raise EnOSFlowNameError(name, exact, [(flow["flowId"], flow["flowName"]) for flow in found])
    return int(exact[0])
