"""List Flow Instances searches that send every mandatory field and miss no instance by default.

The search page (``list_flow_instances.md``) marks ``type``, ``expression``, ``owner``,
``fromTriggerTime``, ``toTriggerTime`` and ``status`` mandatory, and ``type`` takes one scheduling
type. A field the caller leaves open gets the value that filters nothing; an open ``type`` costs one
request series per scheduling type, or one Get Flow when the search is for one workflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_enos_provider._protocol.codes import EnOSFlowType
from airflow_enos_provider._protocol.operations import Operation
from airflow_enos_provider._protocol.retry import Logger
from airflow_enos_provider._status import ALL_STATUSES
from airflow_enos_provider._validation import (
    INSTANCE_ID,
    flow_types,
    require_text,
    statuses,
    to_epoch_ms,
    to_flow_id,
)
from airflow_enos_provider.exceptions import EnOSAPIError, EnOSValidationError

# list_flow_instances keyword -> search body field
LIST_FILTERS = {
    "type": "type",
    "owner": "owner",
    "from_trigger_time": "fromTriggerTime",
    "to_trigger_time": "toTriggerTime",
    "fromTriggerTime": "fromTriggerTime",
    "toTriggerTime": "toTriggerTime",
    "sorters": "sorters",
}
ALL_FLOW_TYPES = tuple(int(t) for t in EnOSFlowType)
# A window that holds any trigger time an instance can have: long ago, and (queued) far ahead.
EARLIEST_TRIGGER_MS = 0
LATEST_TRIGGER_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z


@dataclass(frozen=True)
class Search:
    """A search with every mandatory field filled.

    :param types: the scheduling types to search, one request series each; None for the flow's own
        type, read with Get Flow (then ``flow_id`` is set).
    :param flow_id: keep only this workflow's instances (EnOS matches ids only fuzzily).
    """

    # Each default filters nothing.
    types: tuple[int, ...] | None = ALL_FLOW_TYPES
    expression: str = ""
    owner: str = ""
    from_trigger_time: int = EARLIEST_TRIGGER_MS
    to_trigger_time: int = LATEST_TRIGGER_MS
    status: str = ALL_STATUSES
    sorters: Any = None
    flow_id: int | None = None

    def body(self, flow_type: int) -> dict[str, Any]:
        """Return the search body for one scheduling type (``pagination`` aside; see ``sorters``).

        :param flow_type: the scheduling type to search.
        """
        body: dict[str, Any] = {
            "type": flow_type,
            "expression": self.expression,
            "owner": self.owner,
            "fromTriggerTime": self.from_trigger_time,
            "toTriggerTime": self.to_trigger_time,
            "status": self.status,
        }
        return body


def search(
    status: object = None,
    expression: str | None = None,
    flow_id: int | str | None = None,
    filters: Mapping[str, Any] | None = None,
) -> Search:
    """Return a checked search: the caller's filters, and defaults that filter nothing for the rest.

    :param status: one status or several (codes, names or members); None for every status.
    :param expression: fuzzy match on instance id or flow name; None for ``"<flow_id>-"`` with a
        flow, else ``""`` (no filter).
    :param flow_id: keep only this workflow's instances, and search only its scheduling type.
    :param filters: more fields by keyword: ``type`` (one or several of 0 manual, 1 periodic,
        2 temporary), ``owner`` (a user name), ``from_trigger_time``, ``to_trigger_time`` (ms or
        aware datetimes), ``sorters``.
    """
    fields: dict[str, Any] = {}
    for name, value in (filters or {}).items():
        if name not in LIST_FILTERS:
            allowed = ", ".join(sorted(LIST_FILTERS))
            raise EnOSValidationError(
                f"list_flow_instances got an unknown filter {name!r}; expected {allowed}"
            )
        key = LIST_FILTERS[name]
        fields[key] = to_epoch_ms(value, name) if key.endswith("TriggerTime") and value is not None else value
    wanted = None if flow_id is None else to_flow_id(flow_id)
    types = flow_types(fields.get("type"))
    if expression is None:
        expression = "" if wanted is None else f"{wanted}-"
    owner = fields.get("owner")
    earliest, latest = fields.get("fromTriggerTime"), fields.get("toTriggerTime")
    return Search(
        types=types if types is not None or wanted is not None else ALL_FLOW_TYPES,
        expression=require_text(expression, "expression") if expression else "",
        owner="" if owner is None else require_text(owner, "owner"),
        from_trigger_time=EARLIEST_TRIGGER_MS if earliest is None else earliest,
        to_trigger_time=LATEST_TRIGGER_MS if latest is None else latest,
        status=ALL_STATUSES if status is None else statuses(status),
        sorters=fields.get("sorters"),
        flow_id=wanted,
    )


def flow_type_of(flow: Mapping[str, Any]) -> tuple[int, ...]:
    """Return the scheduling type Get Flow gave, or every type when it gave none that is known.

    :param flow: Get Flow's ``data`` (samples show ``type`` as ``1`` or ``"1"``).
    """
    try:
        return (int(EnOSFlowType(int(flow.get("type")))),)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ALL_FLOW_TYPES


#: With no total to go by, a request series stops after this many instances' worth of pages.
MAX_SEARCH_INSTANCES = 100_000


@dataclass
class Paging:
    """One request series: the page to ask for next, and when to stop. Every search pages with it.

    Whether ``count`` is the number of all matches or of this page's is undocumented
    (``list_flow_instances.md``: "number of elements in the FlowInstance struct"), and a gateway may
    clamp ``pageNo`` and repeat its last page. So the series ends at the first of: a page shorter than
    asked (or empty); a page that brings no instance id not seen before in the series; ``count``
    reached when it is clearly a total (larger than the page); or the hard cap of :meth:`cap` pages,
    which the caller warns about (the result may then be incomplete).

    :param page_size: the page size asked for.
    """

    page_size: int
    page_no: int = 1
    collected: int = 0
    first_total: int | None = None
    ended: str | None = None
    seen: set[str] = field(default_factory=set)

    def take(self, page: list[dict[str, Any]], count: object) -> list[dict[str, Any]]:
        """Record a page's instances (each has a string ``instanceId``) and return the new ones.

        Afterwards ``ended`` says why the series is over, or is None to ask for ``page_no``.

        :param page: the page's instances.
        :param count: the reply's ``count``.
        """
        new = {str(i["instanceId"]): i for i in page if str(i["instanceId"]) not in self.seen}
        self.seen.update(new)
        self.collected += len(page)
        total = _total(count, len(page))
        if self.first_total is None:
            self.first_total = total
        if len(page) < self.page_size:
            self.ended = "short page"
        elif not new:
            self.ended = "a page with no new instance"
        elif total is not None and self.collected >= total:
            self.ended = "count reached"
        elif self.page_no >= self.cap():
            self.ended = "cap"
        self.page_no += 1
        return list(new.values())

    def cap(self) -> int:
        """Return the most pages of the series: twice the first total's pages (instances created
        while paging add some), plus one, and never more than :data:`MAX_SEARCH_INSTANCES`' worth."""
        most = -(-MAX_SEARCH_INSTANCES // self.page_size)
        if self.first_total is None:
            return most
        return min(most, 2 * -(-self.first_total // self.page_size) + 1)

    def warn_if_capped(self, log: Logger, what: str) -> None:
        """Log that the series ended at :meth:`cap`, when it did: its result may be incomplete.

        :param log: where to log.
        :param what: which series, for the log (``"of type 1"``, ``"of flow 2438"``).
        """
        if self.ended == "cap":
            log.warning(
                "EnOS search %s stopped after %s pages of %s (its cap): the gateway kept sending new "
                "instances beyond what count said; the result may be incomplete",
                what, self.page_no - 1, self.page_size,
            )  # fmt: skip


def _total(count: object, page_length: int) -> int | None:
    if isinstance(count, bool):
        return None
    if isinstance(count, str) and count.isascii() and count.isdigit() and len(count) <= 18:
        count = int(count)
    if isinstance(count, int) and count > page_length:
        return count
    return None


def instances_of(data: Mapping[str, Any], op: Operation) -> list[dict[str, Any]]:
    """Return a search reply's instances, each an object with an instance id of the documented shape.

    :param data: the reply's ``data``.
    :param op: the search call, for errors.
    """
    page = data.get("flowInsts")
    if page is None:
        return []
    if not isinstance(page, list):
        raise EnOSAPIError(f"flowInsts is not a list: {page!r:.200}", operation=op.name)
    for index, instance in enumerate(page):
        instance_id = instance.get("instanceId") if isinstance(instance, Mapping) else None
        if not isinstance(instance_id, str) or not INSTANCE_ID.match(instance_id):
            raise EnOSAPIError(
                f"flowInsts[{index}] has no instance id of the documented shape: {instance!r:.200}",
                operation=op.name,
            )
    return page


def of_flow(instance: Mapping[str, Any], flow_id: int | None) -> bool:
    """Say whether a found instance is the workflow's own (or no workflow was asked for)."""
    # EnOS matches ids only fuzzily ("2438-" also finds 12438-...): keep the flow's own.
    return flow_id is None or str(instance.get("flowId")) == str(flow_id)
