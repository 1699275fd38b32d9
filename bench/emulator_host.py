"""Serve the EnOS emulator in its own process, with a control port for the benchmark.

``python bench/emulator_host.py --seed FILE [--latency S] [--cancel-final error|success]`` prints one
line, ``<emulator URL> <control URL>``, then serves until SIGTERM. The control port is a separate
loopback server (so its traffic is never counted as EnOS traffic); ``POST <control>/<command>`` with
a JSON body answers JSON:

- ``stats``: request counts per operation, TCP connections accepted, this process's CPU seconds;
- ``add_instances`` ``{prefix, count, status}``: seed more instances of flow 2438;
- ``set`` ``{latency}``: change the emulated gateway distance;
- ``timings`` ``{operation}``: per request of that operation, the instance id, the time its headers
  were read and the time its reply was written (wall clock, epoch seconds);
- ``active`` ``{flow_id}``: how many of that flow's instances are active, of how many;
- ``clear``: forget the request log and the timings.

Timing every request wraps the emulator's request handler here, in the benchmark harness: the
emulator itself keeps no times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import common

from airflow_enos_provider.emulator import EnOSEmulator
from airflow_enos_provider.emulator import routes as emulator_routes
from airflow_enos_provider.emulator import server as emulator_server
from airflow_enos_provider.emulator.tenant import CANCEL_FINAL_CHOICES

# (method, raw path with query, time headers were read, time the reply was written)
TIMINGS: list[tuple[str, str, float, float]] = []


def _timed_dispatch(original: Any) -> Any:
    def dispatch(self: Any, method: str) -> None:
        arrived = time.time()
        try:
            original(self, method)
        finally:
            TIMINGS.append((method, self.path, arrived, time.time()))  # list.append is atomic

    return dispatch


emulator_server._Handler._dispatch = _timed_dispatch(emulator_server._Handler._dispatch)


def _operation(method: str, raw_path: str) -> tuple[str | None, dict[str, str]]:
    path, _, raw_query = raw_path.partition("?")
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    return emulator_routes.operation_of(method, path.rstrip("/") or "/", query), query


class Control:
    """Answer the benchmark's control commands about one emulator."""

    def __init__(self, emulator: EnOSEmulator) -> None:
        self.emulator = emulator

    def stats(self, args: dict[str, Any]) -> dict[str, Any]:
        state = self.emulator.state
        requests = state.requests
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "counts": dict(Counter(r.operation or "unknown" for r in requests)),
            "requests": len(requests),
            "connections": state.connections_opened,
            "cpu": time.process_time(),
            "max_rss_kb": usage.ru_maxrss,
            "threads": threading.active_count(),
            "time": time.time(),
        }

    def add_instances(self, args: dict[str, Any]) -> dict[str, Any]:
        prefix, count = str(args["prefix"]), int(args["count"])
        ids = common.instance_ids(count, prefix)
        for instance_id in ids:
            self.emulator.state.add_instance(
                instance_id, common.FLOW_ID, status=args.get("status", "RUNNING")
            )
        return {"added": len(ids)}

    def set(self, args: dict[str, Any]) -> dict[str, Any]:
        if "latency" in args:
            self.emulator.state.latency = float(args["latency"])
        return {"latency": self.emulator.state.latency}

    def timings(self, args: dict[str, Any]) -> dict[str, Any]:
        wanted = args.get("operation")
        rows = []
        for method, raw_path, arrived, done in list(TIMINGS):
            operation, query = _operation(method, raw_path)
            if wanted is None or operation == wanted:
                rows.append([operation, query.get("flowInstId"), arrived, done])
        return {"timings": rows}

    def statuses(self, args: dict[str, Any]) -> dict[str, Any]:
        from airflow_enos_provider.emulator import STATUS_NAMES

        state = self.emulator.state
        return {"statuses": dict(Counter(STATUS_NAMES[state.instance_status(i)] for i in args["ids"]))}

    def active(self, args: dict[str, Any]) -> dict[str, Any]:
        from airflow_enos_provider.emulator import ACTIVE_STATUSES

        state, prefix = self.emulator.state, f"{int(args['flow_id'])}-"
        with state.lock:  # no request changes the flow between the reads
            own = [i for i in state.instance_ids() if i.startswith(prefix)]
            active = sum(1 for i in own if state.instance_status(i) in ACTIVE_STATUSES)
        return {"active": active, "instances": len(own)}

    def clear(self, args: dict[str, Any]) -> dict[str, Any]:
        self.emulator.state.clear_requests()
        TIMINGS.clear()
        return {"cleared": True}


def _control_handler(control: Control) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            args = json.loads(self.rfile.read(length) or b"{}")
            command = getattr(control, self.path.strip("/"), None)
            if command is None or self.path.strip("/").startswith("_"):
                status, answer = 404, {"error": f"unknown command {self.path}"}
            else:
                try:
                    status, answer = 200, command(args)
                except Exception as err:  # noqa: BLE001 - reported to the benchmark, which fails the row
                    status, answer = 500, {"error": f"{type(err).__name__}: {err}"}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--cancel-final", default="error", choices=CANCEL_FINAL_CHOICES)
    args = parser.parse_args()

    emulator = EnOSEmulator(args.seed, cancel_final=args.cancel_final)
    emulator.state.latency = args.latency
    emulator.start()
    control_server = ThreadingHTTPServer(("127.0.0.1", 0), _control_handler(Control(emulator)))
    control_server.daemon_threads = True
    threading.Thread(target=control_server.serve_forever, daemon=True).start()
    host, port = control_server.server_address[:2]
    print(f"{emulator.url} http://{host}:{port}", flush=True)

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    while not stopping.wait(0.5):
        if os.getppid() == 1:  # the benchmark died: do not outlive it
            break
    control_server.shutdown()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
