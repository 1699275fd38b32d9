"""Make signed calls to the EnOS API gateway and the Batch Processing Service v2.1.

:class:`EnOSHook` is the Airflow face of the protocol core (:mod:`airflow_enos_provider.protocol`):
it turns a connection into settings, shows the connection form, and runs the core's flows over the
``requests`` transport (sync methods) or the ``aiohttp`` one (``a``-prefixed methods).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

import requests

from airflow_enos_provider._compat import BaseHook, amask_secret, mask_secret
from airflow_enos_provider.connection import (
    CONN_TYPE,
    SETTINGS_TTL,  # noqa: F401 - re-exported
    EnOSConnectionSettings,
    shared_settings,
    warn_about_transport,
)
from airflow_enos_provider.exceptions import EnOSError, EnOSValidationError
from airflow_enos_provider.get_provider_info import legacy_field_behaviour, legacy_form_widgets
from airflow_enos_provider.protocol import batch
from airflow_enos_provider.protocol import operations as ops
from airflow_enos_provider.protocol.flow import Caller, Flow
from airflow_enos_provider.protocol.inputs import to_epoch_ms as to_epoch_ms  # re-exported
from airflow_enos_provider.protocol.retry import RetryCounter
from airflow_enos_provider.protocol.retry import RetryPolicy as RetryPolicy  # re-exported
from airflow_enos_provider.protocol.search import search
from airflow_enos_provider.protocol.tokens import refresh_margin as refresh_margin  # re-exported
from airflow_enos_provider.status import EnOSFlowInstanceStatus
from airflow_enos_provider.transports.drivers import Starter, run_each_sync, run_sync
from airflow_enos_provider.transports.sync import DEFAULT_POOL_SIZE, RequestsTransport
from airflow_enos_provider.validation import require_flow_inst_id, require_flow_inst_ids, require_int

T = TypeVar("T")
DEFAULT_MAX_CONCURRENCY = DEFAULT_POOL_SIZE
SEARCH_PASSES = 5  # the kill switch's searches at most, while each still finds new instances
Statuses = int | str | EnOSFlowInstanceStatus | Iterable[int | str | EnOSFlowInstanceStatus]


class EnOSHook(BaseHook):
    """Call the EnOS API gateway with the token-and-signature scheme, over one keep-alive session.

    Tokens are cached per process for each (gateway, access key) and replaced shortly before they
    expire, and once more when a call is refused because the token expired. Every method has an
    ``a``-prefixed async twin (on aiohttp) where triggers need one.

    :param enos_conn_id: the ``enos`` connection to use.
    :param timeout: seconds per request, overriding the connection's ``timeout`` extra (``on_kill``
        uses a short one, because Airflow kills the process 5 s after asking it to stop).
    :param retries: overrides the connection's ``retries`` extra (default 3).
    :param retry_max_wait: overrides the connection's ``retry_max_wait`` extra (default 60 s).
    :param retry_base_delay: the first backoff in seconds; later ones double, with full jitter.
    """

    conn_name_attr = "enos_conn_id"
    default_conn_name = "enos_default"
    conn_type = CONN_TYPE
    hook_name = "EnOS"

    def __init__(
        self,
        enos_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        retry_max_wait: float | None = None,
        retry_base_delay: float = 0.5,
    ) -> None:
        super().__init__()
        self.enos_conn_id = enos_conn_id
        self.timeout_override = timeout
        self.retries_override = retries
        self.retry_max_wait_override = retry_max_wait
        self.retry_base_delay = retry_base_delay
        self.retry_count = RetryCounter()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the custom connection form fields (Airflow < 3.2; newer reads the provider info)."""
        return legacy_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return the relabelled, hidden and placeholder fields (Airflow < 3.2)."""
        return legacy_field_behaviour()

    # ----------------------------------------------------------------- connection -> settings

    @cached_property
    def settings(self) -> EnOSConnectionSettings:
        """Return the connection's validated settings (read once per hook)."""
        settings = EnOSConnectionSettings.from_connection(self.get_connection(self.enos_conn_id))
        mask_secret(settings.secret_key)
        warn_about_transport(settings, self.log)
        return settings

    async def asettings(self) -> EnOSConnectionSettings:
        """Return the connection's validated settings, reading the connection without blocking.

        Hooks in one event loop share one read per connection id for ``SETTINGS_TTL`` seconds.
        """
        if "settings" not in self.__dict__:
            self.__dict__["settings"] = await shared_settings(self.enos_conn_id, self._aread_settings)
        return self.__dict__["settings"]  # type: ignore[no-any-return]

    async def _aread_settings(self) -> EnOSConnectionSettings:
        if hasattr(self, "aget_connection"):
            conn = await self.aget_connection(self.enos_conn_id)
        else:  # Airflow < 3.1: read it in a thread rather than block the loop
            conn = await asyncio.to_thread(self.get_connection, self.enos_conn_id)
        settings = EnOSConnectionSettings.from_connection(conn)
        await amask_secret(settings.secret_key)
        warn_about_transport(settings, self.log)
        return settings

    def with_limits(self, *, timeout: float | None = None, retries: int | None = None) -> EnOSHook:
        """Return a hook on the same connection with other limits, reusing the settings already read.

        :param timeout: seconds per request (None: the connection's ``timeout`` extra).
        :param retries: how many times a call is repeated (None: the connection's ``retries`` extra).
        """
        hook = type(self)(
            self.enos_conn_id,
            timeout=timeout,
            retries=retries,
            retry_max_wait=self.retry_max_wait_override,
            retry_base_delay=self.retry_base_delay,
        )
        if "settings" in self.__dict__:
            # Immutable, so sharing is safe; the new hook gets its own session and retry counter.
            hook.__dict__["settings"] = self.settings
        return hook

    @property
    def retry_policy(self) -> RetryPolicy:
        """Return the retry policy: the hook's overrides, else the connection's extras."""
        return self._policy(self.settings)

    def _policy(self, settings: EnOSConnectionSettings) -> RetryPolicy:
        return RetryPolicy(
            retries=settings.retries if self.retries_override is None else self.retries_override,
            max_wait=settings.retry_max_wait
            if self.retry_max_wait_override is None
            else self.retry_max_wait_override,
            base_delay=self.retry_base_delay,
        )

    def _caller(self, settings: EnOSConnectionSettings, user_id: str | None, org_id: str | None) -> Caller:
        timeout = settings.timeout if self.timeout_override is None else self.timeout_override
        return Caller(settings, self._policy(settings), timeout, self.log, self.retry_count, user_id, org_id)

    # ----------------------------------------------------------------- running the core's flows

    @cached_property
    def _transport(self) -> RequestsTransport:
        return RequestsTransport(self.settings)

    @property
    def session(self) -> requests.Session:
        """Return this hook's keep-alive HTTP session, pooled for bulk cancels."""
        return self._transport.session

    def get_conn(self) -> requests.Session:
        """Return this hook's HTTP session."""
        return self.session

    def close(self) -> None:
        """Close the HTTP session's pooled connections."""
        if "_transport" in self.__dict__:
            self._transport.close()
            del self.__dict__["_transport"]

    def _run(
        self, procedure: Callable[[Caller], Flow[T]], user_id: str | None = None, org_id: str | None = None
    ) -> T:
        caller = self._caller(self.settings, user_id, org_id)
        return run_sync(procedure(caller), self._transport, mask_secret)

    async def _arun(
        self, procedure: Callable[[Caller], Flow[T]], user_id: str | None = None, org_id: str | None = None
    ) -> T:
        from airflow_enos_provider.transports.aio import AiohttpTransport
        from airflow_enos_provider.transports.drivers import run_async

        caller = self._caller(await self.asettings(), user_id, org_id)
        return await run_async(procedure(caller), AiohttpTransport(caller.settings.verify), amask_secret)

    def _read(self, op: ops.Operation, user_id: str | None, org_id: str | None) -> dict[str, Any]:
        return self._run(lambda caller: batch.read_object(caller, op), user_id, org_id)

    # ----------------------------------------------------------------- Batch Processing operations

    def cancel_flow_instance(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> None:
        """Ask EnOS to cancel a flow instance.

        :param flow_inst_id: the instance id, e.g. ``2438-201908081020``.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :raises EnOSAPIError: when EnOS refuses (the error names the code and what to do).
        """
        op = ops.cancel_flow_instance(flow_inst_id)
        self._run(lambda caller: caller.call(op), user_id, org_id)

    async def acancel_flow_instance(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> None:
        """Ask EnOS to cancel a flow instance (async; see :meth:`cancel_flow_instance`)."""
        op = ops.cancel_flow_instance(flow_inst_id)
        await self._arun(lambda caller: caller.call(op), user_id, org_id)

    def get_flow_instance(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Return a flow instance as EnOS describes it (``status`` is the integer code).

        :param flow_inst_id: the instance id.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        return self._read(ops.get_flow_instance(flow_inst_id), user_id, org_id)

    async def aget_flow_instance(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Return a flow instance (async; see :meth:`get_flow_instance`)."""
        op = ops.get_flow_instance(flow_inst_id)
        return await self._arun(lambda caller: batch.read_object(caller, op), user_id, org_id)

    def ensure_flow_instance_stopped(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Cancel a flow instance, or confirm that it already finished; safe to repeat.

        Sends the cancel first (no read on the success path). When EnOS refuses, reads the instance:
        if it is final the outcome is ``already_final`` with that status; otherwise the refusal stands.
        So an instance that finishes between any read and the cancel is ``already_final``, not an error.

        :param flow_inst_id: the instance id.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :return: ``{"flow_inst_id", "outcome": "cancelled" | "already_final", "status"}``, where
            ``status`` is the status name read after a refusal, or None when EnOS accepted the cancel.
        :raises EnOSAPIError: the cancel's refusal, when the instance is still active or unreadable.
        """
        flow_inst_id = require_flow_inst_id(flow_inst_id)
        return self._run(lambda caller: batch.ensure_stopped(caller, flow_inst_id), user_id, org_id)

    async def aensure_flow_instance_stopped(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Cancel a flow instance or confirm it finished (async; see :meth:`ensure_flow_instance_stopped`)."""
        flow_inst_id = require_flow_inst_id(flow_inst_id)
        return await self._arun(lambda caller: batch.ensure_stopped(caller, flow_inst_id), user_id, org_id)

    def cancel_flow_instances(
        self,
        flow_inst_ids: Iterable[str] | None = None,
        *,
        flow_id: int | str | None = None,
        expression: str | None = None,
        only_active: bool = True,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        user_id: str | None = None,
        org_id: str | None = None,
    ) -> dict[str, dict[str, Any] | EnOSError]:
        """Stop many flow instances concurrently: the ids given, or the ones a search finds.

        Each gets :meth:`ensure_flow_instance_stopped`; one failing id does not stop the others. With
        ``flow_id``/``expression`` (the kill switch), instances are found as :meth:`find_flow_instances`
        finds them, and a page's cancels run while the next page is read; a search that fails part
        way raises after stopping what it found.

        :param flow_inst_ids: the instance ids (duplicates are cancelled once).
        :param flow_id: instead of ids, the workflow whose instances to stop.
        :param expression: instead of ids, a fuzzy match on instance id or flow name.
        :param only_active: with a search, stop only instances that may still run.
        :param max_concurrency: the most requests in flight at once (1 to 256).
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :return: per id, in the order given or found, the outcome dict or the error that stopped it.
        """
        if (flow_inst_ids is None) == (flow_id is None and expression is None):
            raise EnOSValidationError("cancel_flow_instances takes flow_inst_ids or flow_id/expression")
        ids = None if flow_inst_ids is None else require_flow_inst_ids(flow_inst_ids, "flow_inst_ids")
        active = sorted(EnOSFlowInstanceStatus.active_statuses()) if only_active else None
        query = None if ids is not None else search(active, expression, flow_id, {})
        require_int(max_concurrency, "max_concurrency", 1, 256)
        caller = self._caller(self.settings, user_id, org_id)
        self.settings.batch_identity(user_id, org_id)  # checked before any request
        if max_concurrency > DEFAULT_MAX_CONCURRENCY:
            self._transport.widen_pool(max_concurrency)
        self._run(Caller.token)  # once, before the threads fan out

        def feed(stop: Starter[dict[str, Any]]) -> None:
            if query is None:
                for flow_inst_id in ids or ():
                    stop(flow_inst_id)
                return

            def each_page(page: list[dict[str, Any]]) -> None:
                for instance in page:
                    stop(str(instance["instanceId"]))

            found = run_sync(batch.with_flow_type(caller, query), self._transport, mask_secret)
            # An active-only search loses each instance it cancels, so later pages shift past some:
            # once the cancels are done, search again until a search finds nothing new.
            for _ in range(SEARCH_PASSES if only_active else 1):
                before = len(stop.started)
                run_sync(batch.search_all(caller, found, 100, each_page), self._transport, mask_secret)
                if len(stop.started) == before:
                    return
                stop.settle()

        def stop(flow_inst_id: str) -> Flow[dict[str, Any]]:
            return batch.ensure_stopped(caller, require_flow_inst_id(flow_inst_id))

        return run_each_sync(feed, stop, self._transport, mask_secret, max_concurrency)

    def find_flow_instances(
        self,
        *,
        flow_id: int | str | None = None,
        expression: str | None = None,
        only_active: bool = True,
        user_id: str | None = None,
        org_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Return the instances of a workflow (and/or matching an expression), all pages.

        With ``flow_id``: one Get Flow for its scheduling type, then its instances (matching
        ``"<flow_id>-"``, ``flowId`` exactly ``flow_id``); with an expression only, every type.

        :param flow_id: the workflow whose instances to find.
        :param expression: fuzzy match on instance id or flow name.
        :param only_active: keep only instances that may still run (see ``active_statuses()``).
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        if flow_id is None and expression is None:
            raise EnOSValidationError("find_flow_instances needs flow_id or expression (or both)")
        active = sorted(EnOSFlowInstanceStatus.active_statuses()) if only_active else None
        return self.list_flow_instances(
            status=active, expression=expression, flow_id=flow_id, user_id=user_id, org_id=org_id
        )

    def list_flow_instances(
        self,
        *,
        status: Statuses | None = None,
        expression: str | None = None,
        flow_id: int | str | None = None,
        page_size: int = 100,
        user_id: str | None = None,
        org_id: str | None = None,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        """Return every flow instance that matches, following all pages.

        Every field EnOS requires is sent; one not given filters nothing (every status, owner and
        expression, trigger times 1970-2100). Without ``type``: one request series per scheduling type,
        or with ``flow_id`` one Get Flow and a series for its type; a series is a request per page.

        :param status: one status or several, as codes, names or
            :class:`~airflow_enos_provider.status.EnOSFlowInstanceStatus`; None for all.
        :param expression: fuzzy match on instance id or flow name (default ``"<flow_id>-"`` or none).
        :param flow_id: only this workflow's instances.
        :param page_size: instances per page request (1 to 1000).
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :param filters: more search fields: ``type`` (one or several of 0 manual, 1 periodic,
            2 temporary), ``owner`` (the owner's user name), ``from_trigger_time`` and
            ``to_trigger_time`` (ms or datetime), ``sorters`` (default: creation time, ascending).
        """
        require_int(page_size, "page_size", 1, 1000)
        query = search(status, expression, flow_id, filters)
        return self._run(lambda caller: batch.search_all(caller, query, page_size), user_id, org_id)

    def get_task_instance(
        self, task_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Return a task instance (``instanceId``, ``flowInstId``, ``status``, times).

        :param task_inst_id: the task instance id, as a flow instance's graph names it.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        return self._read(ops.get_task_instance(task_inst_id), user_id, org_id)

    def get_task_instance_log(
        self,
        task_inst_id: str,
        *,
        max_length: int | None = None,
        user_id: str | None = None,
        org_id: str | None = None,
    ) -> str:
        """Return a task instance's log text.

        :param task_inst_id: the task instance id, as a flow instance's graph names it.
        :param max_length: the most characters to return; None for EnOS's default (about 1 MiB).
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        op = ops.get_task_instance_log(task_inst_id, max_length)
        return self._run(lambda caller: batch.task_log(caller, op), user_id, org_id)

    def trigger_flow(
        self,
        flow_id: int | str,
        *,
        trigger_time: int | datetime | None = None,
        parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | str | None = None,
        start_task_id: str | None = None,
        user_id: str | None = None,
        org_id: str | None = None,
    ) -> str:
        """Start a workflow and return the new flow-instance id.

        When the trigger got no reply but may have reached EnOS, the instance it started is looked
        up (by its trigger time) instead of starting a second one.

        :param flow_id: the workflow id (an integer, or its digits as a string).
        :param trigger_time: the logical trigger time, ms since the epoch or a datetime; default now.
        :param parameters: run with these parameters (EnOS "Update And Trigger Flow"): a mapping
            ``{"REPLACE": "ddee"}``, the documented list ``[{"key": ..., "value": ...}]``, or a JSON
            string of either; sent as the list, values as text.
        :param start_task_id: start from this task of the workflow (EnOS "Trigger Flow From Task").
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        op = ops.trigger_flow(flow_id, trigger_time, parameters, start_task_id)
        return self._run(lambda caller: batch.trigger(caller, op), user_id, org_id)

    def get_flow(
        self, flow_id: int | str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Return a workflow's definition.

        :param flow_id: the workflow id.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :return: the flow as EnOS describes it, including its ``locked`` and ``isUserLocked`` flags.
        """
        return self._read(ops.get_flow(flow_id), user_id, org_id)

    def get_server_time(self, *, user_id: str | None = None, org_id: str | None = None) -> int:
        """Return EnOS's current time in milliseconds since the epoch (UTC).

        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        return self._run(batch.server_time, user_id, org_id)

    def test_connection(self) -> tuple[bool, str]:
        """Check the credentials, then that the connection can make Batch calls; never raises."""
        try:
            settings = self.settings
            # The credentials first, with a token request of their own (a cached token proves nothing):
            # the cached one, if any, counts as stale, and the new one is kept for the call below.
            self._run(lambda caller: caller.token(stale=caller.tokens.valid(caller.token_key)))
            missing = [name for name in ("org_id", "user_id") if not getattr(settings, name)]
            if missing:
                return False, (
                    f"Credentials accepted by {settings.gateway_url}, but the connection has no "
                    f"{' and no '.join(missing)} extra: every Batch Processing call needs both"
                )
            server_ms = self.get_server_time()
            return (
                True,
                f"Connected to {settings.gateway_url}: signed call accepted, server time {server_ms} ms",
            )
        except Exception as err:  # noqa: BLE001 - the UI and CLI expect a verdict, not a traceback
            return False, str(err)


def async_clients_lease() -> AbstractAsyncContextManager[None]:
    """Keep the event loop's shared async sessions open while in use; the last user out closes them.

    Each trigger holds a lease while it runs, so a triggerer keeps its connections across thousands
    of waits, and a loop that ends (``dag.test()``, a worker waiting inline) leaves none open.
    """
    from airflow_enos_provider.transports.aio import clients_lease

    return clients_lease()


async def aclose_async_clients() -> None:
    """Close the async sessions of the running event loop (a worker running a wait inline calls this)."""
    from airflow_enos_provider.transports.aio import aclose_clients

    await aclose_clients()
