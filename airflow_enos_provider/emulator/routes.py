"""The routing table: which method, path and action each emulated operation answers on.

Like moto's ``urls.py``: one route per contract of
:data:`airflow_enos_provider._protocol.contract.CONTRACTS` (``enos-api.md`` sections 1 and 3), which
says the method, path and action; this module adds only who answers. Nothing else decides where a
request goes: a request no route names is refused, never sent to a near match.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import NamedTuple

from airflow_enos_provider._protocol.codes import BATCH_PATH
from airflow_enos_provider._protocol.contract import CONTRACTS, Contract
from airflow_enos_provider.emulator import responses
from airflow_enos_provider.emulator.responses import Responder

__all__ = ["BATCH_PREFIX", "ROUTES", "Match", "Route", "operation_of", "resolve"]

BATCH_PREFIX = BATCH_PATH + "/"


@dataclass(frozen=True)
class Route:
    """One operation: where it is served and who answers it.

    :param resource: the path after the prefix (``"flowInstances"``, ``"get"``).
    :param action: the ``action`` query value, or None for the token service (it takes none).
    """

    method: str
    prefix: str
    resource: str
    action: str | None
    respond: Responder

    @property
    def operation(self) -> str:
        """The operation's name in the request log and in faults, e.g. ``"flowInstances.cancel"``."""
        return f"{self.resource}.{self.action}" if self.action is not None else f"token.{self.resource}"


# Who answers each operation (named as in the request log); where it is served comes from its contract.
_RESPONDERS: dict[str, Responder] = {
    "token.get": responses.token_route(responses.token_get),
    "token.refresh": responses.token_route(responses.token_refresh),
    "flowInstances.cancel": responses.batch_route(responses.cancel),
    "flowInstances.get": responses.batch_route(responses.get_instance),
    "flowInstances.search": responses.batch_route(responses.search),
    "flows.trigger": responses.batch_route(responses.trigger),
    "flows.updateAndTrigger": responses.batch_route(responses.update_and_trigger),
    "flows.triggerFromTask": responses.batch_route(responses.trigger_from_task),
    "flows.get": responses.batch_route(responses.get_flow),
    "flows.disable": responses.batch_route(responses.disable_flow),
    "flows.enable": responses.batch_route(responses.enable_flow),
    "flows.search": responses.batch_route(responses.search_flows),
    "flows.getMyFlow": responses.batch_route(responses.my_flows),
    "time.getCurrentTime": responses.batch_route(responses.current_time),
    "time.getTimeZone": responses.batch_route(responses.time_zone),
    "taskInstances.get": responses.batch_route(responses.get_task_instance),
    "taskInstances.getLog": responses.batch_route(responses.get_task_log),
}


def _route(contract: Contract) -> Route:
    prefix, resource = posixpath.dirname(contract.path) + "/", posixpath.basename(contract.path)
    operation = f"{resource}.{contract.action}" if contract.action is not None else f"token.{resource}"
    return Route(contract.method, prefix, resource, contract.action, _RESPONDERS[operation])


#: One route per contract: the method, path and action are the contract's, written once.
ROUTES: tuple[Route, ...] = tuple(_route(contract) for contract in CONTRACTS)

_BY_KEY: dict[tuple[str, str, str | None], Route] = {
    (route.method, route.prefix + route.resource, route.action): route for route in ROUTES
}
# A resource answers an action it lacks with an API error, not a 404 (see responses.batch_route).
_BATCH_RESOURCES: frozenset[tuple[str, str]] = frozenset(
    (route.method, route.prefix + route.resource) for route in ROUTES if route.action is not None
)
_REFUSE_ACTION = responses.batch_route(None)


class Match(NamedTuple):
    """Where a request goes: its operation name (None when no route names it) and its responder."""

    operation: str | None
    respond: Responder


def resolve(method: str, path: str, query: dict[str, str]) -> Match:
    """Return the route a request takes.

    :param method: the HTTP method.
    :param path: the URL path without the query or a trailing slash.
    :param query: the decoded query.
    """
    route = _BY_KEY.get((method, path, None))
    if route is None and path.startswith(BATCH_PREFIX):
        route = _BY_KEY.get((method, path, query.get("action")))
    if route is not None:
        return Match(route.operation, route.respond)
    if (method, path) in _BATCH_RESOURCES:
        return Match(None, _REFUSE_ACTION)
    return Match(None, responses.not_found)


def operation_of(method: str, path: str, query: dict[str, str]) -> str | None:
    """Return the operation a request names, or None (e.g. for the benchmark's timing table)."""
    return resolve(method, path, query).operation
