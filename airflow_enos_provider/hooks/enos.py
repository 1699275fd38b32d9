"""Make signed calls to the EnOS Batch Processing Service v2.1 through the API gateway.

:class:`EnOSHook` is the Airflow face of the protocol core (``airflow_enos_provider._protocol``):
each method builds an operation and runs the core's flow for it, over the ``requests`` transport
(sync methods) or the ``aiohttp`` one (``a``-prefixed); the connection, the form and the drivers are
in :mod:`airflow_enos_provider.hooks.enos_base`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from airflow_enos_provider._failure_logs import MAX_FAILED_TASKS, FailureReport, read_failure_report
from airflow_enos_provider._protocol import operations as ops
from airflow_enos_provider._protocol.catalog import flows_of, lookup_flow
from airflow_enos_provider._protocol.codes import EnOSCode
from airflow_enos_provider._protocol.ended import ended_instances
from airflow_enos_provider._protocol.flow import Caller
from airflow_enos_provider._protocol.operations import Operation, Started
from airflow_enos_provider._protocol.reattach import (
    MINUTE_MS,
    Found,
    ambiguity,
    candidate_times,
    describe,
    own_instances,
    parse_zone,
)
from airflow_enos_provider._protocol.search import Paging, Search, flow_type_of, instances_of, of_flow, search
from airflow_enos_provider._status import DEFAULT_FAILURE_LOG_BYTES
from airflow_enos_provider._transports.sync import MAX_CONCURRENCY
from airflow_enos_provider._validation import (
    INSTANCE_ID,
    require_flow_inst_id,
    require_flow_inst_ids,
    require_int,
    require_text,
    to_epoch_ms,
    to_flow_id,
)
from airflow_enos_provider._watermark import Ended
from airflow_enos_provider.exceptions import (
    EnOSAPIError,
    EnOSAuthenticationError,
    EnOSError,
    EnOSValidationError,
)
from airflow_enos_provider.hooks.enos_base import EnOSBaseHook
from airflow_enos_provider.status import EnOSFlowInstanceStatus

__all__ = ["EnOSHook", "Started", "Statuses"]

_DEFAULT_MAX_CONCURRENCY = 16
_SEARCH_PASSES = 5  # the kill switch's searches at most, while each still finds new instances
# Refusals after which reading the instance cannot change the verdict of a cancel.
_NOT_WORTH_A_READ = frozenset({EnOSCode.BP_USER_MISMATCH, EnOSCode.BP_LOCKED})
#: Waits (s) before a trigger refused for the same workflow "repeatedly in 1 minute" is sent again
#: (trigger_flow_from_task, the support site's error table): 62 s in all, past any one-minute rule.
_WALL_CLOCK_WAITS = (2.0, 4.0, 8.0, 16.0, 32.0)
Statuses = int | str | EnOSFlowInstanceStatus | Iterable[int | str | EnOSFlowInstanceStatus]


class EnOSHook(EnOSBaseHook):
    """Call the EnOS Batch Processing Service v2.1: cancel, read, search and trigger flow instances,
    and stop or start a workflow's schedule.

    Connection, retries and transports come from :class:`~airflow_enos_provider.hooks.enos_base.EnOSBaseHook`
    (its parameters are this hook's).
    """

    # Airflow before 3.2 builds the form only from methods the registered hook class itself defines
    # (providers_manager checks the class __dict__), so they live here, not on the base class.
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the custom connection form fields (Airflow < 3.2; newer reads the provider info)."""
        from airflow_enos_provider._connection_form import legacy_form_widgets

        return legacy_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return the relabelled, hidden and placeholder fields (Airflow < 3.2)."""
        from airflow_enos_provider._connection_form import legacy_field_behaviour

        return legacy_field_behaviour()

    def cancel_flow_instance(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> None:
        """Ask EnOS to cancel a flow instance.

        :param flow_inst_id: the instance id, e.g. ``2438-201908081020``.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :raises EnOSAPIError: when EnOS refuses (the error names the code and what to do).
        """
        self._call(ops.cancel_flow_instance(flow_inst_id), user_id, org_id)

    async def acancel_flow_instance(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> None:
        """Ask EnOS to cancel a flow instance (async; see :meth:`cancel_flow_instance`)."""
        await self._acall(ops.cancel_flow_instance(flow_inst_id), user_id, org_id)

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
        return await self._aread(ops.get_flow_instance(flow_inst_id), user_id, org_id)

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
        try:
            self._call(ops.cancel_flow_instance(flow_inst_id), user_id, org_id)
        except EnOSAPIError as refusal:
            if not _worth_a_read(refusal):
                raise
            instance: dict[str, Any] | EnOSError
            try:
                instance = self._read(ops.get_flow_instance(flow_inst_id), user_id, org_id)
            except EnOSError as read_error:
                instance = read_error
            return self._outcome_after_refusal(flow_inst_id, refusal, instance)
        return _stopped(flow_inst_id, "cancelled", None)

    async def aensure_flow_instance_stopped(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Cancel a flow instance or confirm it finished (async; see :meth:`ensure_flow_instance_stopped`)."""
        flow_inst_id = require_flow_inst_id(flow_inst_id)
        try:
            await self._acall(ops.cancel_flow_instance(flow_inst_id), user_id, org_id)
        except EnOSAPIError as refusal:
            if not _worth_a_read(refusal):
                raise
            instance: dict[str, Any] | EnOSError
            try:
                instance = await self._aread(ops.get_flow_instance(flow_inst_id), user_id, org_id)
            except EnOSError as read_error:
                instance = read_error
            return self._outcome_after_refusal(flow_inst_id, refusal, instance)
        return _stopped(flow_inst_id, "cancelled", None)

    def _outcome_after_refusal(
        self, flow_inst_id: str, refusal: EnOSAPIError, instance: dict[str, Any] | EnOSError
    ) -> dict[str, Any]:
        if isinstance(instance, EnOSError):
            self.log.warning(
                "EnOS refused to cancel flow instance %s (code %s) and reading it failed too: %s",
                flow_inst_id, refusal.code, instance,
            )  # fmt: skip
            raise refusal
        try:
            status = EnOSFlowInstanceStatus.parse(instance.get("status"), "status")
        except EnOSValidationError:
            raise refusal from None
        if not status.is_final:
            raise refusal
        return _stopped(flow_inst_id, "already_final", status)

    def cancel_flow_instances(
        self,
        flow_inst_ids: Iterable[str] | None = None,
        *,
        flow_id: int | str | None = None,
        expression: str | None = None,
        only_active: bool = True,
        max_concurrency: int = _DEFAULT_MAX_CONCURRENCY,
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
        require_int(max_concurrency, "max_concurrency", 1, MAX_CONCURRENCY)
        self.settings.batch_identity(user_id, org_id)  # checked before any request
        self._run(Caller.token)  # once, before the threads fan out

        def stop(flow_inst_id: str) -> dict[str, Any] | EnOSError:
            try:
                return self.ensure_flow_instance_stopped(flow_inst_id, user_id=user_id, org_id=org_id)
            except EnOSError as err:  # one id's failure does not stop the others
                return err

        started: dict[str, Future[dict[str, Any] | EnOSError]] = {}
        with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="enos-cancel") as pool:

            def start(page: Iterable[str]) -> None:
                for flow_inst_id in page:  # each id once, as soon as it is known
                    if flow_inst_id not in started:
                        started[flow_inst_id] = pool.submit(stop, flow_inst_id)

            if query is None:
                start(ids or ())
            else:
                found = self._with_flow_type(query, user_id, org_id)
                # An active-only search loses each instance it cancels, so later pages shift past
                # some: once the cancels are done, search again until a search finds nothing new.
                for _ in range(_SEARCH_PASSES if only_active else 1):
                    before = len(started)
                    self._search_all(
                        found, 100, lambda page: start(str(i["instanceId"]) for i in page), user_id, org_id
                    )
                    if len(started) == before:
                        break
                    wait(list(started.values()))
        return {flow_inst_id: future.result() for flow_inst_id, future in started.items()}

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
        return self._search_all(query, page_size, None, user_id, org_id)

    def _search_all(
        self,
        query: Search,
        page_size: int,
        on_page: Callable[[list[dict[str, Any]]], None] | None,
        user_id: str | None,
        org_id: str | None,
    ) -> list[dict[str, Any]]:
        """Return every flow instance a search matches, following all pages of each scheduling type.

        :param on_page: called with each page's new matching instances as soon as the page arrives.
        """
        query = self._with_flow_type(query, user_id, org_id)
        found: dict[str, dict[str, Any]] = {}
        for flow_type in query.types or ():
            paging = Paging(page_size)
            while paging.ended is None:
                op = ops.search_flow_instances(
                    query.body(flow_type), paging.page_no, page_size, query.sorters
                )
                data = self._read(op, user_id, org_id)
                page = paging.take(instances_of(data, op), data.get("count"))
                new = [i for i in page if str(i["instanceId"]) not in found and of_flow(i, query.flow_id)]
                found.update((str(i["instanceId"]), i) for i in new)
                if on_page is not None and new:
                    on_page(new)
            paging.warn_if_capped(self.log, f"of type {flow_type}")
        return list(found.values())

    def _with_flow_type(self, query: Search, user_id: str | None, org_id: str | None) -> Search:
        # A search without types is one workflow's: its own type is read with Get Flow.
        if query.types is not None:
            return query
        assert query.flow_id is not None
        return replace(query, types=flow_type_of(self._read(ops.get_flow(query.flow_id), user_id, org_id)))

    def _instances_at(
        self, flow_id: int, times: Sequence[int], user_id: str | None, org_id: str | None
    ) -> list[dict[str, Any]]:
        # The flow's instances whose trigger time lies in the seconds of ``times`` (ascending).
        window = {
            "from_trigger_time": times[0] - times[0] % 1000,
            "to_trigger_time": times[-1] - times[-1] % 1000 + 999,
        }
        return self._search_all(search(flow_id=flow_id, filters=window), 100, None, user_id, org_id)

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
        data = self._read(op, user_id, org_id)
        log = data.get("log")
        if not isinstance(log, str):
            raise EnOSAPIError(f"the reply has no log text: {data!r:.200}", operation=op.name)
        return log

    def get_failed_task_logs(
        self,
        flow_inst_id: str,
        *,
        max_bytes: int = DEFAULT_FAILURE_LOG_BYTES,
        max_tasks: int = MAX_FAILED_TASKS,
        user_id: str | None = None,
        org_id: str | None = None,
    ) -> FailureReport:
        """Return the end of each failed task's log of a flow instance; a log that cannot be read is noted.

        Reads the instance's graph, then up to ``max_tasks`` failed tasks' logs, one after another.

        :param flow_inst_id: the instance id.
        :param max_bytes: the most bytes (UTF-8) of each log to keep, from its end.
        :param max_tasks: the most failed tasks whose logs are read.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        flow_inst_id = require_flow_inst_id(flow_inst_id)
        require_int(max_bytes, "max_bytes", 1, 2**31 - 1)
        return read_failure_report(self, flow_inst_id, max_bytes, max_tasks, user_id, org_id)

    def trigger_flow(
        self,
        flow_id: int | str,
        *,
        trigger_time: int | datetime | None = None,
        parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | str | None = None,
        start_task_id: str | int | None = None,
        not_before: int | datetime | None = None,
        user_id: str | None = None,
        org_id: str | None = None,
    ) -> Started:
        """Start a workflow; return the new flow-instance id, the trigger time it got and the one asked for.

        The trigger time is kept, except where EnOS refuses a second instance for the same minute:
        then the next free minute of the same hour is used, and the log says both times and why. A
        refusal with no instance at that time (a one-minute rule on the wall clock) is waited out,
        about a minute at most. When the trigger got no reply but may have reached EnOS, the
        instance it started is looked up (at its exact trigger time, owned by this user, started no
        earlier than ``not_before``) instead of starting a second one.

        :param flow_id: the workflow id (an integer, or its digits as a string).
        :param trigger_time: the trigger time (the business time), ms since the epoch or a datetime;
            default now.
        :param parameters: run with these parameters (EnOS "Update And Trigger Flow"): a mapping
            ``{"REPLACE": "ddee"}``, the documented list ``[{"key": ..., "value": ...}]``, or a JSON
            string of either; sent as the list, values as text.
        :param start_task_id: start from this task of the workflow (EnOS "Trigger Flow From Task"; its
            id is sent as an integer when it is digits).
        :param not_before: the earliest an instance this caller started can have started; default a
            minute before this call.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        requested = int(time.time() * 1000) if trigger_time is None else to_epoch_ms(trigger_time)
        since = None if not_before is None else to_epoch_ms(not_before, "not_before")
        ops.trigger_flow(flow_id, requested, parameters, start_task_id)  # checks the input before any request

        waits = _WALL_CLOCK_WAITS
        times = candidate_times(requested)
        since = int(time.time() * 1000) - MINUTE_MS if since is None else since
        index, waited = 0, 0
        while True:
            at = times[index]
            op = ops.trigger_flow(flow_id, at, parameters, start_task_id)
            try:
                return Started(self._trigger_once(op, since, user_id, org_id), at, requested)
            except EnOSAPIError as refusal:
                if refusal.code != EnOSCode.BP_INVALID_PARAMETER or isinstance(
                    refusal, EnOSAuthenticationError
                ):
                    raise
                flow = op.body["flowId"]  # type: ignore[index]
                taken = self._instances_at(flow, [at], user_id, org_id)
                if taken and index + 1 < len(times):
                    index += 1
                    self.log.warning(
                        "EnOS refused flow %s at trigger time %s (%s), which instance %s already has; "
                        "triggering at %s instead, the next minute of that hour (asked for %s)",
                        flow, describe(at), refusal.message, taken[0].get("instanceId"),
                        describe(times[index]), describe(requested),
                    )  # fmt: skip
                    continue
                if taken and waited >= len(waits):
                    raise EnOSError(
                        f"EnOS refused flow {flow} at every minute from {describe(requested)} to the end "
                        f"of that hour ({refusal.message}); the last, {describe(at)}, has instance "
                        f"{taken[0].get('instanceId')}, and the hour has no later minute left. Give this "
                        "task a trigger_time of its own"
                    ) from refusal
                if waited >= len(waits):
                    raise EnOSError(
                        f"EnOS kept refusing flow {flow} at trigger time {describe(at)} for "
                        f"{sum(waits):.0f} s ({refusal.message}) although no instance has that time: "
                        "check that the flow (and the start task) exist"
                    ) from refusal
                # No instance at this minute (or none left to try): a one-minute rule on the wall clock.
                # Minutes passed over as taken may have been refused by that rule too: start again
                # from the time asked for once it has passed.
                self.log.warning(
                    "EnOS refused flow %s at trigger time %s (%s)%s: waiting %.0f s (EnOS may refuse a "
                    "second trigger of a flow within one minute), then triggering at %s again",
                    flow, describe(at), refusal.message, "" if taken else " and no instance has that time",
                    waits[waited], describe(requested),
                )  # fmt: skip
                time.sleep(waits[waited])
                index, waited = 0, waited + 1

    def _trigger_once(self, op: Operation, since: int, user_id: str | None, org_id: str | None) -> str:
        assert op.body is not None  # a trigger always has one
        flow_id, trigger_ms = op.body["flowId"], op.body["triggerTime"]

        def started_without_reply(err: EnOSError) -> dict[str, Any] | None:
            # The trigger may have started the flow although no reply came: find that instance
            # instead of starting a second one. Only when EnOS shows none is repeating safe.
            zone = self.get_time_zone(user_id=user_id, org_id=org_id)
            found = own_instances(
                self._instances_at(flow_id, [trigger_ms], user_id, org_id), [trigger_ms], zone, since
            )
            if not found.own:
                return None
            if len(found.own) > 1:
                raise EnOSError(
                    f"EnOS trigger of flow {flow_id} got no reply ({err}); {ambiguity(found)}"
                ) from err
            started = str(found.own[0].get("instanceId"))
            self.log.warning(
                "EnOS trigger of flow %s got no reply (%s) but started flow instance %s (%s); using it",
                flow_id, err, started, found.compared,
            )  # fmt: skip
            return {"flowInstanceId": started}

        data = self._call(op, user_id, org_id, before_repeat=started_without_reply)
        instance_id = data.get("flowInstanceId") if isinstance(data, Mapping) else None
        if not isinstance(instance_id, str) or not INSTANCE_ID.match(instance_id):
            # Never report "triggered" with an id no later call could use (digits, a dash, digits).
            what = f"{data!r:.200}"
            raise EnOSAPIError(
                f"the reply has no flowInstanceId in the documented shape: {what}", operation="trigger_flow"
            )
        return instance_id

    def get_time_zone(self, *, user_id: str | None = None, org_id: str | None = None) -> timezone:
        """Return the zone EnOS writes its time strings in (Get Timezone, e.g. ``GMT+8``).

        Read once per hook and OU: a tenant's zone does not change (it has no daylight saving), and a
        trigger's retry needs it for its search and again for its log line.

        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        zones: dict[str | None, timezone] = self.__dict__.setdefault("_zones", {})
        if org_id not in zones:
            zones[org_id] = _zone_of(self._read(ops.GET_TIME_ZONE, user_id, org_id))
        return zones[org_id]

    async def aget_time_zone(self, *, user_id: str | None = None, org_id: str | None = None) -> timezone:
        """Return the zone EnOS writes its time strings in (async; see :meth:`get_time_zone`)."""
        zones: dict[str | None, timezone] = self.__dict__.setdefault("_zones", {})
        if org_id not in zones:
            zones[org_id] = _zone_of(await self._aread(ops.GET_TIME_ZONE, user_id, org_id))
        return zones[org_id]

    def find_own_flow_instances(
        self,
        flow_id: int | str,
        trigger_time: int | datetime,
        *,
        not_before: int | datetime | None = None,
        user_id: str | None = None,
        org_id: str | None = None,
    ) -> Found:
        """Return the flow's instances a caller triggering at ``trigger_time`` may have started.

        One Get Timezone and one search over the trigger time's candidate minutes (it and the later
        minutes of its hour); kept are the instances at
        exactly one of them, editable by this user and not shown to have started before ``not_before``.

        :param flow_id: the workflow id.
        :param trigger_time: the trigger time asked for.
        :param not_before: the earliest such an instance can have started; None for no bound.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        times = candidate_times(to_epoch_ms(trigger_time))
        since = None if not_before is None else to_epoch_ms(not_before, "not_before")
        flow = to_flow_id(flow_id)
        zone = self.get_time_zone(user_id=user_id, org_id=org_id)
        return own_instances(self._instances_at(flow, times, user_id, org_id), times, zone, since)

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

    def disable_flow(
        self, flow_id: int | str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Stop a workflow's schedule (EnOS "Disable Flow"); safe to repeat.

        Reads Get Flow's ``active`` first and sends Disable Flow only when the schedule is started.
        The instances already running are not touched (what EnOS does to them is undocumented: cancel
        them with :meth:`cancel_flow_instances`).

        :param flow_id: the workflow id.
        :param user_id: the EnOS user id (the workflow's owner); defaults to the connection's ``user_id``.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :return: ``{"flow_id", "was_active", "active", "changed"}``: the schedule's state before and
            after, and whether this call's Disable Flow got a code-0 reply.
        :raises EnOSAPIError: when EnOS refuses (62103 not the owner, 62105 user or workflow locked).
        """
        return self._set_flow_schedule(flow_id, False, user_id, org_id)

    def enable_flow(
        self, flow_id: int | str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Start a workflow's schedule (EnOS "Enable Flow"); safe to repeat (see :meth:`disable_flow`).

        :param flow_id: the workflow id.
        :param user_id: the EnOS user id (the workflow's owner); defaults to the connection's ``user_id``.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :return: ``{"flow_id", "was_active", "active", "changed"}``, as :meth:`disable_flow`'s.
        """
        return self._set_flow_schedule(flow_id, True, user_id, org_id)

    def _set_flow_schedule(
        self, flow_id: int | str, active: bool, user_id: str | None, org_id: str | None
    ) -> dict[str, Any]:
        flow = to_flow_id(flow_id)
        self.settings.batch_identity(user_id, org_id)  # checked before any request
        change = ops.set_flow_schedule(flow, active)
        verb, wanted = ("enable", "started") if active else ("disable", "stopped")
        was_active = self.is_flow_active(flow, user_id=user_id, org_id=org_id)
        if was_active == active:
            self.log.info("EnOS flow %s: schedule already %s; no %s request sent", flow, wanted, verb)
            return _schedule(flow, was_active, active, changed=False)
        try:
            self._call(change, user_id, org_id)
        except EnOSAPIError as refusal:
            # A refusal may mean the change is already made (by another client since the read, or by
            # this call's own attempt whose reply was lost): only a read that shows it can say so.
            if not _worth_a_read(refusal) or refusal.code == EnOSCode.BP_NO_PRIVILEGE:
                raise
            try:
                now_active = self.is_flow_active(flow, user_id=user_id, org_id=org_id)
            except EnOSError:
                raise refusal from None
            if now_active != active:
                raise
            self.log.info(
                "EnOS refused to %s flow %s (code %s) and Get Flow shows its schedule %s: nothing to do",
                verb, flow, refusal.code, wanted,
            )  # fmt: skip
            return _schedule(flow, was_active, active, changed=False)
        self.log.info("EnOS accepted the %s of flow %s: its schedule is %s", verb, flow, wanted)
        return _schedule(flow, was_active, active, changed=True)

    def is_flow_active(
        self, flow_id: int | str, *, user_id: str | None = None, org_id: str | None = None
    ) -> bool:
        """Return whether a workflow's schedule is started (Get Flow's ``active``: 1 start, 0 pause).

        :param flow_id: the workflow id.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :raises EnOSAPIError: when the reply has no ``active`` of 0 or 1.
        """
        # get_flow.md: "active" Integer (digit strings read too, as the vendor's samples send numbers).
        op = ops.get_flow(flow_id)
        value = self._read(op, user_id, org_id).get("active")
        if isinstance(value, str) and value.strip() in ("0", "1"):
            value = int(value)
        if value not in (0, 1) or isinstance(value, float):
            raise EnOSAPIError(
                f"Get Flow's reply has no schedule state (active 0 or 1) for flow {flow_id}: {value!r:.80}",
                operation=op.name,
            )
        return bool(value)

    async def aget_flow(
        self, flow_id: int | str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Return a workflow's definition (async; see :meth:`get_flow`)."""
        return await self._aread(ops.get_flow(flow_id), user_id, org_id)

    async def _aended_instances(
        self,
        flow_id: int,
        types: Sequence[int],
        statuses: Iterable[EnOSFlowInstanceStatus],
        ended_since: int,
        zone: timezone,
        user_id: str | None,
        org_id: str | None,
    ) -> tuple[list[Ended], bool]:
        # The event watcher's search (airflow_enos_provider._protocol.ended), in the zone its caller
        # already read (each poll reads it once; a catch-up reuses its poll's).
        return await self._arun(
            lambda caller: ended_instances(caller, flow_id, types, statuses, ended_since, zone),
            user_id,
            org_id,
        )

    def find_flow(self, name: str, *, user_id: str | None = None, org_id: str | None = None) -> int:
        """Return the id of the flow named exactly ``name`` (EnOS "Search Flow", every page).

        Search Flow matches fuzzily (on id and name, in any flow of the OU); the flow is the one
        whose name equals ``name``, case included.

        :param name: the flow name.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :raises EnOSFlowNameError: when no flow or several are named exactly ``name`` (it lists the
            flows found, fuzzy matches included).
        """
        require_text(name, "flow_name")  # before the connection is read
        return self._run(lambda caller: lookup_flow(caller, name), user_id, org_id)

    async def afind_flow(self, name: str, *, user_id: str | None = None, org_id: str | None = None) -> int:
        """Return the id of the flow named exactly ``name`` (async; see :meth:`find_flow`)."""
        require_text(name, "flow_name")
        return await self._arun(lambda caller: lookup_flow(caller, name), user_id, org_id)

    def get_my_flows(
        self, expression: str | None = None, *, user_id: str | None = None, org_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Return the user's flows (EnOS "Get My Flow"), matching ``expression`` if given.

        :param expression: fuzzy match on flow id and flow name; None for every flow.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :return: ``[{"flowId", "flowName", "editable", "cycle"}]`` as EnOS gives them, ``flowId`` as
            an int (the page types it String).
        """
        op = ops.get_my_flows(expression)
        return flows_of(self._call(op, user_id, org_id), op)


def _schedule(flow_id: int, was_active: bool, active: bool, *, changed: bool) -> dict[str, Any]:
    return {"flow_id": flow_id, "was_active": was_active, "active": active, "changed": changed}


def _zone_of(data: Mapping[str, Any]) -> timezone:
    try:
        return parse_zone(data.get("timezone"))
    except ValueError as err:
        raise EnOSAPIError(
            f"the reply has no readable timezone: {err}", operation=ops.GET_TIME_ZONE.name
        ) from None


def _worth_a_read(refusal: EnOSAPIError) -> bool:
    # Credentials, another user's instance or a locked flow: reading the instance changes nothing.
    return not isinstance(refusal, EnOSAuthenticationError) and refusal.code not in _NOT_WORTH_A_READ


def _stopped(flow_inst_id: str, outcome: str, status: EnOSFlowInstanceStatus | None) -> dict[str, Any]:
    return {"flow_inst_id": flow_inst_id, "outcome": outcome, "status": status.name if status else None}
