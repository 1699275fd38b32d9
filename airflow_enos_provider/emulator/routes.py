"""The routing table: which method, path and action each emulated operation answers on.

Like moto's ``urls.py``: one row per operation (``enos-api.md`` sections 1 and 3), nothing else
decides where a request goes. A request no row names is refused, never sent to a near match.
Every row has its contract in :data:`airflow_enos_provider._protocol.contract.CONTRACTS`, which
the responders check each request against.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import NamedTuple

from airflow_enos_provider._protocol.codes import BATCH_PATH, TOKEN_PATH
from airflow_enos_provider.emulator import responses
from airflow_enos_provider.emulator.responses import Responder

__all__ = ["BATCH_PREFIX", "ROUTES", "TOKEN_PREFIX", "Match", "Route", "operation_of", "resolve"]

# The token service's operations are the last path segment ("token/get", "token/refresh").
TOKEN_PREFIX = posixpath.dirname(TOKEN_PATH) + "/"
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


ROUTES: tuple[Route, ...] = (
    Route("POST", TOKEN_PREFIX, "get", None, responses.token_route(responses.token_get)),
    Route("POST", TOKEN_PREFIX, "refresh", None, responses.token_route(responses.token_refresh)),
    Route("POST", BATCH_PREFIX, "flowInstances", "cancel", responses.batch_route(responses.cancel)),
    Route("GET", BATCH_PREFIX, "flowInstances", "get", responses.batch_route(responses.get_instance)),
    Route("POST", BATCH_PREFIX, "flowInstances", "search", responses.batch_route(responses.search)),
    Route("POST", BATCH_PREFIX, "flows", "trigger", responses.batch_route(responses.trigger)),
    Route(
        "POST", BATCH_PREFIX, "flows", "updateAndTrigger", responses.batch_route(responses.update_and_trigger)
    ),
    Route(
        "POST", BATCH_PREFIX, "flows", "triggerFromTask", responses.batch_route(responses.trigger_from_task)
    ),
    Route("GET", BATCH_PREFIX, "flows", "get", responses.batch_route(responses.get_flow)),
    Route("GET", BATCH_PREFIX, "time", "getCurrentTime", responses.batch_route(responses.current_time)),
    Route("GET", BATCH_PREFIX, "time", "getTimeZone", responses.batch_route(responses.time_zone)),
    Route("GET", BATCH_PREFIX, "taskInstances", "get", responses.batch_route(responses.get_task_instance)),
    Route("GET", BATCH_PREFIX, "taskInstances", "getLog", responses.batch_route(responses.get_task_log)),
)

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
