"""One deadline per blocking request: at expiry, the socket in use is shut down, whatever it waits for.

``requests`` (urllib3) only knows timeouts per socket operation, so a gateway that trickles a byte
before each timeout ends holds a request for ever. Here a connection registers each socket it uses
(new ones as they are created, reused ones as a request starts) with the running thread's
:class:`Deadline`; one watchdog thread per process shuts the socket down when the deadline passes, so
the blocked connect, send or read fails at once and the transport reports a timeout.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_CURRENT = threading.local()


class Deadline:
    """The end of one request: the socket it uses is shut down when the time comes.

    :param seconds: from now.
    """

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.expired = False
        self.done = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def remaining(self) -> float:
        """Return the seconds left (at least a millisecond, for libraries that refuse 0)."""
        return max(0.001, self.at - time.monotonic())

    def watch(self, sock: socket.socket | None) -> None:
        """Make ``sock`` the socket to shut down at the deadline (at once if it passed)."""
        with self._lock:
            if sock is None or self.done:
                return
            self._sock = sock
            if self.expired:
                _shutdown(sock)

    def expire(self) -> None:
        """Called by the watchdog when the time has come."""
        with self._lock:
            if self.done:
                return
            self.expired = True
            if self._sock is not None:
                _shutdown(self._sock)

    def finish(self) -> None:
        """The request is over: forget the socket, which may go back to the pool."""
        with self._lock:
            self.done = True
            self._sock = None


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Run a request under one deadline of ``seconds`` in this thread.

    :param seconds: the whole request's budget: connect, send, headers and body.
    """
    current = Deadline(seconds)
    _CURRENT.deadline = current
    _WATCHDOG.add(current)
    try:
        yield current
    finally:
        current.finish()
        _CURRENT.deadline = None


def _watch(sock: socket.socket | None) -> None:
    current: Deadline | None = getattr(_CURRENT, "deadline", None)
    if current is not None:
        current.watch(sock)


def _shutdown(sock: socket.socket) -> None:
    # socket.socket's own shutdown, not SSLSocket's (which drops its TLS state under the reader's
    # feet): the blocked call in the other thread wakes with EOF or an error.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One thread per process that expires deadlines in time order."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._pid: int | None = None  # the thread does not survive a fork: start one per process

    def add(self, deadline: Deadline) -> None:
        with self._cond:
            if self._pid != os.getpid():
                self._pid, self._heap = os.getpid(), []
                threading.Thread(target=self._run, name="enos-deadlines", daemon=True).start()
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].done:
                        heapq.heappop(self._heap)
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    if wait is not None and wait <= 0:
                        due = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(wait)
            due.expire()


_WATCHDOG = _Watchdog()


class DeadlineHTTPConnection(HTTPConnection):
    """A urllib3 connection whose sockets obey the running thread's deadline."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)  # before the TLS handshake: the raw socket carries it
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)  # a kept-alive connection, reused
        super().request(*args, **kwargs)


class DeadlineHTTPSConnection(HTTPSConnection):
    """The TLS twin of :class:`DeadlineHTTPConnection`."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)


class DeadlineHTTPConnectionPool(HTTPConnectionPool):
    """A pool of :class:`DeadlineHTTPConnection`."""

    ConnectionCls = DeadlineHTTPConnection


class DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    """A pool of :class:`DeadlineHTTPSConnection`."""

    ConnectionCls = DeadlineHTTPSConnection


POOL_CLASSES = {"http": DeadlineHTTPConnectionPool, "https": DeadlineHTTPSConnectionPool}
