"""Serve the emulated EnOS API gateway (token service + Batch Processing v2.1) over loopback HTTP.

The server only speaks HTTP: it reads a request, lets :mod:`.routes` pick its responder (which
checks access, calls :class:`EmulatorState` and renders the envelope, :mod:`.responses`), applies
injected faults and writes the reply. Every request is recorded before its reply is written, so a
client that has its answer can already see the request in :attr:`EmulatorState.requests`.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import os
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from airflow_enos_provider._protocol.codes import EnOSCode
from airflow_enos_provider.emulator import inspection, routes
from airflow_enos_provider.emulator.faults import Fault, FaultKind, fault_reply
from airflow_enos_provider.emulator.recorder import RecordedRequest, masked_body
from airflow_enos_provider.emulator.responses import UNPARSEABLE, Reply, Request, batch_envelope
from airflow_enos_provider.emulator.seed import load_seed_file
from airflow_enos_provider.emulator.state import EmulatorState
from airflow_enos_provider.emulator.tokens import DEFAULT_TOKEN_TTL

__all__ = ["EnOSEmulator", "connection_json", "load_seed_file"]

_logger = logging.getLogger("airflow_enos_provider.emulator")

_MAX_BODY_BYTES = 10 * 1024 * 1024


class _BadRequest(Exception):
    """Signal a request whose body cannot even be read (bad framing)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Bursts of parallel clients should queue, not be refused.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: EmulatorState) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.state = state
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a reverse DNS lookup that can stall on loopback.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # Small JSON replies must not wait for Nagle's algorithm (40 ms stalls with keep-alive).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that drop connections are normal in tests; keep stderr quiet.
        _logger.debug("error while serving %s", client_address, exc_info=True)

    def track(self, sock: socket.socket, is_open: bool) -> None:
        with self._open_lock:
            if is_open:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def close_open_connections(self) -> None:
        # Keep-alive handler threads would otherwise keep answering after stop().
        with self._open_lock:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection_id = self.server.state.register_connection()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header follows the emulator's clock, so a client can measure its skew against it.
        return email.utils.formatdate(
            self.server.state.now() if timestamp is None else timestamp, usegmt=True
        )

    def log_message(self, fmt: str, *args: Any) -> None:
        # The request line holds no secrets (tokens travel in headers, which are never logged).
        _logger.debug("%s - %s", self.address_string(), fmt % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        path = raw_path.rstrip("/") or "/"
        query: dict[str, str] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            query.setdefault(name, value)
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self.close_connection = True
            request = Request(method, path, query, b"", None, self.headers)
            self._finish(request, None, Reply(400, {"message": str(exc)}))
            return
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = UNPARSEABLE
        state = self.server.state
        if inspection.is_inspection(path):
            self._write(*inspection.answer(state, method, path))
            return
        request = Request(method, path, query, body, parsed, self.headers)
        match = routes.resolve(method, path, query)
        fault = state.faults.take(match.operation)
        if fault is not None and not fault.processed:
            self._unprocessed_fault(request, match.operation, fault)
            return
        if fault is not None and fault.kind is FaultKind.TOKEN_EXPIRED:
            state.expire_tokens()
        try:
            reply = match.respond(state, request)
        except Exception:
            _logger.exception("emulator failed on %s %s", method, path)
            reply = Reply(500, batch_envelope(EnOSCode.BP_INTERNAL, "Internal server exception"))
        self._finish(request, match.operation, reply, fault=fault)

    def _write(self, status: int, payload: dict[str, Any]) -> None:
        # The inspection views: plain JSON, never recorded, never faulted.
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(data)

    def _unprocessed_fault(self, request: Request, operation: str | None, fault: Fault) -> None:
        if fault.kind is FaultKind.RESET_BEFORE:
            self._record(request, operation, None, None, fault)
            self._reset()
            return
        answer = fault_reply(fault)
        reply = Reply(answer.status, answer.payload)
        self._finish(request, operation, reply, fault=fault, headers=answer.headers, raw=answer.raw)

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send RST: the client sees "connection reset by peer".
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length")
        if not raw_length:
            return b""
        try:
            length = int(raw_length)
        except ValueError:
            raise _BadRequest("Bad Content-Length") from None
        if length < 0 or length > _MAX_BODY_BYTES:
            raise _BadRequest("Request Entity Too Large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("Bad chunked encoding") from None
            if size == 0:
                # Discard trailers up to the blank line that ends the message.
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > _MAX_BODY_BYTES:
                raise _BadRequest("Request Entity Too Large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _finish(
        self,
        request: Request,
        operation: str | None,
        reply: Reply,
        *,
        fault: Fault | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> None:
        status, payload = reply.status, reply.payload
        code = payload.get("code", payload.get("status"))
        self._record(request, operation, code if isinstance(code, int) else None, reply, fault)
        kind = fault.kind if fault is not None else None
        if kind is FaultKind.RESET_AFTER:
            self._reset()
            return
        data = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
        if kind is FaultKind.TRUNCATED:
            data = data[: len(data) // 2]
        if latency := self.server.state.latency:
            time.sleep(latency)  # the emulated distance to the gateway, not synchronisation
        if fault is not None and kind is FaultKind.LATENCY:
            time.sleep(fault.seconds)
        self.send_response(status)
        if raw is None:
            content_type = "application/json;charset=UTF-8"
        elif raw.startswith(b"<"):
            content_type = "text/html"
        else:
            content_type = "text/plain"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if fault is not None and kind is FaultKind.SLOW_BODY:
            self.wfile.flush()
            time.sleep(fault.seconds)  # the injected slowness itself
        with contextlib.suppress(OSError):  # a client that timed out may be gone
            self.wfile.write(data)

    def _record(
        self,
        request: Request,
        operation: str | None,
        code: int | None,
        reply: Reply | None,
        fault: Fault | None,
    ) -> None:
        self.server.state.record(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=request.query,
                operation=operation,
                body=masked_body(request.parsed),
                code=code,
                http_status=reply.status if reply is not None else 0,
                connection_id=self.connection_id,
                peer_port=int(self.client_address[1]),
                fault=fault.kind.value if fault is not None else None,
                violations=reply.violations if reply is not None else (),
            )
        )


class EnOSEmulator:
    """Run an emulated EnOS gateway + Batch Processing Service v2.1 on a loopback HTTP port.

    Settings precedence: the seed's ``settings`` apply first; a ``cancel_final`` or ``token_ttl``
    keyword that differs from its default then overrides them. Both stay settable at run time on
    ``state``.
    """

    def __init__(
        self,
        seed: dict[str, Any] | str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cancel_final: str = "error",
        token_ttl: float = DEFAULT_TOKEN_TTL,
        clock: Callable[[], float] | str | None = None,
        tls: tuple[str, str] | None = None,
    ) -> None:
        """Build the emulator and load its seed (nothing listens until :meth:`start`).

        :param seed: a seed dict (see :class:`~airflow_enos_provider.emulator.seed.Seed`), the
            path of a JSON file holding one, or None for an empty tenant.
        :param host: the address to listen on.
        :param port: the port to listen on; 0 picks a free one.
        :param cancel_final: ``"error"`` or ``"success"``: the reply to cancelling a finished instance.
        :param token_ttl: the lifetime of issued access tokens, in seconds.
        :param clock: a callable returning epoch seconds, ``"manual"`` for a clock that only moves on
            :meth:`EmulatorState.advance`, or None for wall time.
        :param tls: ``(certificate file, key file)`` to serve HTTPS instead of HTTP.
        """
        self.tls = tls
        self.state = EmulatorState(clock=clock)
        if seed is not None:
            self.state.load_seed(load_seed_file(seed))
        if cancel_final != "error":
            self.state.cancel_final = cancel_final
        if token_ttl != DEFAULT_TOKEN_TTL:
            self.state.token_ttl = token_ttl
        self.host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:43121`` (only once started)."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.server_address[:2]
        host = str(host)
        scheme = "https" if self.tls else "http"
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    @property
    def port(self) -> int:
        """The port listened on (the requested one until first started, then the one bound)."""
        return int(self._server.server_address[1]) if self._server is not None else self._port

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._server is not None

    def start(self) -> EnOSEmulator:
        """Bind the port and serve in a daemon thread; return self."""
        if self._server is not None:
            raise RuntimeError("the emulator is already started")
        server = _Server((self.host, self._port), self.state)
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="enos-emulator", daemon=True
        )
        thread.start()
        # A restart after stop() binds this port again: clients that knew the gateway find it back.
        self._port = int(server.server_address[1])
        self._server, self._thread = server, thread
        _logger.debug("EnOS emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection and free the port (no-op when not started).

        Connections are refused until :meth:`start` is called again, which serves the same state on
        the same port: a gateway outage as clients see it.
        """
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        server.close_open_connections()
        if thread is not None:
            thread.join()

    def __enter__(self) -> EnOSEmulator:
        """Start the emulator for a ``with`` block."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the emulator at the end of a ``with`` block."""
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not started"
        return f"<EnOSEmulator {where}>"


def connection_json(
    url: str, *, access_key: str, secret_key: str, org_id: object, user_id: object, **extra: object
) -> str:
    """Return an ``AIRFLOW_CONN_<ID>`` value (JSON) for an ``enos`` connection to ``url``.

    :param url: the gateway URL, e.g. an emulator's :attr:`EnOSEmulator.url`.
    :param access_key: the application's access key.
    :param secret_key: the application's secret key.
    :param org_id: the ``org_id`` extra.
    :param user_id: the ``user_id`` extra.
    :param extra: more extras, e.g. ``verify`` or ``timeout``.
    """
    return json.dumps(
        {
            "conn_type": "enos",
            "host": url,
            "login": access_key,
            "password": secret_key,
            "extra": {"org_id": org_id, "user_id": user_id, **extra},
        }
    )
