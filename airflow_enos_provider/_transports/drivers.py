"""The two drivers of one call's flow: the same loop with blocking I/O and with async I/O.

Each runs a flow (:mod:`airflow_enos_provider._protocol.flow`) by doing what it yields: send a
request, sleep, or fetch a token under the cache's lock. A failure is thrown back into the flow,
which decides what happens next; every decision stays in the flow.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

from airflow_enos_provider._protocol.flow import Action, Flow, Send, Sleep
from airflow_enos_provider._protocol.transport import AsyncTransport, SyncTransport
from airflow_enos_provider.exceptions import EnOSError

T = TypeVar("T")


def run_sync(flow: Flow[T], transport: SyncTransport, mask: Callable[[str], None]) -> T:
    """Run a flow with blocking I/O and return its result.

    :param flow: the flow.
    :param transport: sends its requests.
    :param mask: called with each new access token, so logs never show it.
    """
    run = _Stepper(flow)
    while (action := run.next()) is not None:
        with run:
            if isinstance(action, Send):
                run.result = transport.send(action.request)
            elif isinstance(action, Sleep):
                time.sleep(action.seconds)
            else:
                with action.tokens.lock:  # threads that need a token wait for one fetch
                    if (token := action.cached()) is None:
                        mask(token := run_sync(action.fetch(), transport, mask))
                    run.result = token
    return run.value


async def run_async(flow: Flow[T], transport: AsyncTransport, mask: Callable[[str], Awaitable[None]]) -> T:
    """Run a flow without blocking the event loop and return its result (see :func:`run_sync`)."""
    run = _Stepper(flow)
    while (action := run.next()) is not None:
        with run:
            if isinstance(action, Send):
                run.result = await transport.send(action.request)
            elif isinstance(action, Sleep):
                await asyncio.sleep(action.seconds)
            else:
                async with action.tokens.async_lock():  # triggers in this loop wait for one fetch
                    if (token := action.cached()) is None:
                        await mask(token := await run_async(action.fetch(), transport, mask))
                    run.result = token
    return run.value


class _Stepper(Generic[T]):
    """Resume a flow with the last action's result, or throw the action's failure into it."""

    __slots__ = ("failure", "flow", "result", "value")

    def __init__(self, flow: Flow[T]) -> None:
        self.flow = flow
        self.result: Any = None
        self.failure: EnOSError | None = None

    def next(self) -> Action | None:
        """Return the flow's next action, or None when it finished (its result is then ``value``)."""
        result, failure = self.result, self.failure
        self.result = self.failure = None
        try:
            return self.flow.send(result) if failure is None else self.flow.throw(failure)
        except StopIteration as done:
            self.value: T = done.value
            return None

    def __enter__(self) -> None:
        pass

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> bool:
        # An EnOS failure goes back into the flow; anything else (a bug, a cancellation) propagates.
        if isinstance(err, EnOSError):
            self.failure = err
            return True
        return False
