"""Scripted hostile gateways on loopback: servers that answer as a broken or malicious EnOS gateway would.

Each :class:`Gateway` runs a script (request -> :class:`Reply`) over raw sockets, so it can do what no
well-behaved server does: redirect elsewhere, trickle a byte at a time, stall, send 33 MiB, or send
malformed envelopes and tokens. It records every request and, when the client hung up before the
reply was out, how many body bytes it had sent by then: proof that a deadline cut the reply short.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TOKEN_PATH = "/apim-token-service/v2.0/token/get"
GOOD_TOKEN = "hostile-gateway-token-0123456789"


@dataclass
class Seen:
    """A request the gateway received."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def action(self) -> str | None:
        for part in self.target.partition("?")[2].split("&"):
            if part.startswith("action="):
                return part[len("action=") :]
        return None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What to answer.

    :param status: the HTTP status.
    :param body: the body bytes.
    :param headers: extra headers.
    :param interval: seconds between single bytes of the body (a trickle); 0 sends it at once.
    :param trickle_head: trickle the status line and headers as well.
    :param stall: read the request and answer nothing until the client hangs up.
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    interval: float = 0.0
    trickle_head: bool = False
    stall: bool = False


def envelope(data: Any = None, code: Any = 0, msg: Any = "OK") -> bytes:
    """Return a v2.1 envelope's bytes."""
    return json.dumps({"code": code, "msg": msg, "data": data}).encode()


def token_reply(token: Any = GOOD_TOKEN, expire: Any = 7200) -> Reply:
    """Return a token-service reply."""
    return Reply(
        body=json.dumps(
            {"status": 0, "msg": " Success", "data": {"accessToken": token, "expire": expire}}
        ).encode()
    )


def with_token(script: Callable[[Seen], Reply]) -> Callable[[Seen], Reply]:
    """Answer token requests with a good token, everything else with ``script``."""
    return lambda seen: token_reply() if seen.path == TOKEN_PATH else script(seen)


class Gateway:
    """A scripted HTTP/1.1 server on 127.0.0.1 (keep-alive, one thread per connection).

    :param script: the reply to each request.
    """

    def __init__(self, script: Callable[[Seen], Reply]) -> None:
        self.script = script
        self.seen: list[Seen] = []
        self.hung_up: list[tuple[int, int]] = []  # (body bytes sent, body length) when the client left
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def count(self, action: str | None = None, path: str | None = None) -> int:
        """Return how many requests had this ``action`` (or this path)."""
        return sum(
            1
            for s in self.seen
            if (path is None or s.path == path) and (action is None or s.action == action)
        )

    def hang_ups(self, expected: int) -> list[tuple[int, int]]:
        """Return :attr:`hung_up` once it has ``expected`` entries (the server notices a little late)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.hung_up) >= expected, timeout=30)
        return self.hung_up

    def _hung_up(self, sent: int, length: int) -> None:
        with self._changed:
            self.hung_up.append((sent, length))
            self._changed.notify_all()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(60)
        buffer = b""
        with conn:
            while not self._stop.is_set():
                try:
                    while b"\r\n\r\n" not in buffer:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buffer += chunk
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    lines = head.decode("latin-1").split("\r\n")
                    method, target, _ = lines[0].split(" ", 2)
                    headers = {
                        k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
                    }
                    length = int(headers.get("content-length", "0"))
                    while len(buffer) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buffer += chunk
                except OSError:
                    return
                seen = Seen(method, target, headers, buffer[:length])
                buffer = buffer[length:]
                self.seen.append(seen)
                if not self._answer(conn, self.script(seen)):
                    return

    def _answer(self, conn: socket.socket, reply: Reply) -> bool:
        if reply.stall:
            with contextlib.suppress(OSError):
                conn.recv(1)  # returns when the client hangs up (or after the socket's timeout)
            self._hung_up(0, 0)
            return False
        extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
        head = (
            f"HTTP/1.1 {reply.status} Scripted\r\nContent-Length: {len(reply.body)}\r\n{extra}\r\n".encode()
        )
        sent = 0
        try:
            if reply.trickle_head:
                for byte in head:
                    conn.sendall(bytes([byte]))
                    self._stop.wait(reply.interval)
            else:
                conn.sendall(head)
            if reply.interval:
                for byte in reply.body:
                    conn.sendall(bytes([byte]))
                    sent += 1
                    self._stop.wait(reply.interval)
            else:
                conn.sendall(reply.body)
                sent = len(reply.body)
        except OSError:
            self._hung_up(sent, len(reply.body))
            return False
        return True


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``call``; return (its result or the exception it raised, seconds it took)."""
    started = time.monotonic()
    try:
        result: Any = call()
    except Exception as err:  # noqa: BLE001 - the test inspects it
        result = err
    return result, time.monotonic() - started
