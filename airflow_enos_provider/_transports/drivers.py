"""The two drivers of a call flow: the same loop with blocking I/O and with async I/O.

Each runs a flow (:mod:`airflow_enos_provider._protocol.flow`) by doing what it yields: send a
request, sleep, or fetch a token under the cache's lock. A failure is thrown back into the flow,
which decides what happens next; every decision stays in the flow.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
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


class Starter(Generic[T]):
    """Start one flow per key in a thread pool; a repeated key runs once."""

    def __init__(self, pool: ThreadPoolExecutor, run: Callable[[str], T | EnOSError]) -> None:
        self.pool, self.run = pool, run
        self.started: dict[str, Future[T | EnOSError]] = {}

    def __call__(self, key: str) -> None:
        """Start the flow of ``key`` unless it was started before."""
        if key not in self.started:
            self.started[key] = self.pool.submit(self.run, key)

    def settle(self) -> None:
        """Wait until every flow started so far has ended."""
        wait(list(self.started.values()))


def run_each_sync(
    feed: Callable[[Starter[T]], None],
    flow_for: Callable[[str], Flow[T]],
    transport: SyncTransport,
    mask: Callable[[str], None],
    max_concurrency: int,
) -> dict[str, T | EnOSError]:
    """Run one flow per key that ``feed`` names, each as soon as it is named, some at once.

    :param feed: called with a :class:`Starter`, which it calls with each key.
    :param flow_for: the flow of a key.
    :param transport: sends every flow's requests (its pool is shared by the threads).
    :param mask: called with each new access token.
    :param max_concurrency: the most flows in flight at once.
    :return: per key, in the order named, its flow's result or the EnOS error that ended it.
    """

    def run(key: str) -> T | EnOSError:
        try:
            return run_sync(flow_for(key), transport, mask)
        except EnOSError as err:  # one key's failure does not stop the others
            return err

    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="enos-cancel") as pool:
        start = Starter(pool, run)
        feed(start)
    return {key: future.result() for key, future in start.started.items()}


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
