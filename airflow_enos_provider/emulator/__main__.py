"""Run the EnOS emulator from the command line until SIGTERM or SIGINT, or look at a running one.

``python -m airflow_enos_provider.emulator --port 0 --seed seed.json`` prints exactly one line on
stdout, the base URL, so a script can read it and point an EnOS connection at it. Without ``--seed``
it serves the demo tenant shipped in the package, and says so on stderr.
``python -m airflow_enos_provider.emulator instances URL`` prints a running emulator's instances and
their status history (read-only, over ``GET /_emulator/instances``); ``... requests URL`` prints the
EnOS requests it received, e.g. the trigger time and parameters a DAG sent (``GET /_emulator/requests``).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from airflow_enos_provider.emulator.inspection import INSTANCES, REQUESTS
from airflow_enos_provider.emulator.seed import DEMO_SEED, SEED_SCHEMA
from airflow_enos_provider.emulator.server import EnOSEmulator
from airflow_enos_provider.emulator.tenant import CANCEL_FINAL_CHOICES, TRIGGER_RULES

__all__ = ["build_parser", "main", "show_instances", "show_requests"]


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_enos_provider.emulator",
        description="Serve an emulated EnOS API gateway + Batch Processing Service v2.1.",
        epilog=SEED_SCHEMA + f"without --seed: the demo tenant, {DEMO_SEED}\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    parser.add_argument(
        "--seed", help="JSON file with apps, users, flows, instances and settings (below); default: the demo"
    )
    parser.add_argument(
        "--cancel-final",
        choices=CANCEL_FINAL_CHOICES,
        help="reply to cancelling a finished instance (overrides the seed; default error)",
    )
    parser.add_argument(
        "--trigger-rule",
        choices=TRIGGER_RULES,
        help="how a second trigger of a flow is answered (undocumented; overrides the seed; default "
        "same_minute_ids)",
    )
    parser.add_argument(
        "--token-ttl", type=float, help="access-token lifetime in seconds (overrides the seed; default 7200)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added before answering each request (default 0)"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    commands = parser.add_subparsers(dest="command", metavar="{instances,requests}")
    instances = commands.add_parser(
        "instances",
        help="print a running emulator's flow instances and their status history, then exit",
        description=f"Print the flow instances of the emulator at URL (read-only: GET {INSTANCES}).",
    )
    instances.add_argument("url", help="the emulator's base URL, e.g. http://127.0.0.1:8080")
    instances.add_argument("--json", action="store_true", help="print the JSON the emulator answers")
    received = commands.add_parser(
        "requests",
        help="print the EnOS requests a running emulator received (no header, token or signature), then exit",
        description=(
            f"Print the EnOS requests the emulator at URL received, in order (read-only: GET {REQUESTS}): "
            "method, path, action, query and body, with signatures and tokens shown as ***."
        ),
    )
    received.add_argument("url", help="the emulator's base URL, e.g. http://127.0.0.1:8080")
    received.add_argument("--json", action="store_true", help="print the JSON the emulator answers")
    return parser


def _show(url: str, path: str, as_json: bool, render: Callable[[dict[str, Any]], Iterable[str]]) -> int:
    """Print a read-only view of the emulator at ``url``, as JSON or rendered; return the exit status."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + path, timeout=10) as reply:
            document: dict[str, Any] = json.load(reply)
    except (OSError, ValueError) as exc:
        print(f"enos emulator: cannot read {url.rstrip('/')}{path}: {exc}", file=sys.stderr)
        return 2
    for line in [json.dumps(document, indent=2)] if as_json else render(document):
        print(line)
    return 0


def show_instances(url: str, as_json: bool) -> int:
    """Print the instances of the emulator at ``url``; return the exit status.

    :param url: the emulator's base URL.
    :param as_json: print the reply as it came instead of a table.
    """

    def render(document: dict[str, Any]) -> Iterator[str]:
        for view in document["instances"]:
            steps = " -> ".join(f"{step['status']} {_clock(step['time_ms'])}" for step in view["history"])
            yield f"{view['instance_id']}  flow {view['flow_id']}  {view['status']}  ({steps})"

    return _show(url, INSTANCES, as_json, render)


def show_requests(url: str, as_json: bool) -> int:
    """Print the EnOS requests the emulator at ``url`` received; return the exit status.

    :param url: the emulator's base URL.
    :param as_json: print the reply as it came instead of one line per request.
    """

    def render(document: dict[str, Any]) -> Iterator[str]:
        for view in document["requests"]:
            query = "&".join(f"{name}={value}" for name, value in view["query"].items())
            body = "" if view["body"] is None else " " + json.dumps(view["body"], separators=(",", ":"))
            yield (
                f"{view['index']:>4}  {view['method']} {view['path']}{'?' + query if query else ''}{body}"
                f"  -> HTTP {view['http_status']}, code {view['code']}"
            )

    return _show(url, REQUESTS, as_json, render)


def _clock(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def main(argv: Sequence[str] | None = None) -> int:
    """Start the emulator, print its URL and serve until SIGTERM/SIGINT; return the exit status.

    :param argv: the arguments without the program name; ``sys.argv[1:]`` when None.
    """
    args = build_parser().parse_args(argv)
    if args.command == "instances":
        return show_instances(args.url, args.json)
    if args.command == "requests":
        return show_requests(args.url, args.json)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(message)s")
    if args.seed is None:
        print(f"enos emulator: no --seed given, serving the demo tenant from {DEMO_SEED}", file=sys.stderr)
    try:
        emulator = EnOSEmulator(args.seed or DEMO_SEED, host=args.host, port=args.port)
        # Flags given on the command line always win over the seed's settings.
        if args.cancel_final is not None:
            emulator.state.cancel_final = args.cancel_final
        if args.token_ttl is not None:
            emulator.state.token_ttl = args.token_ttl
        if args.trigger_rule is not None:
            emulator.state.trigger_rule = args.trigger_rule
        emulator.state.latency = args.latency
        emulator.start()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"enos emulator: {exc}", file=sys.stderr)
        return 2

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        print(emulator.url, flush=True)
        # A timed wait keeps the main thread returning to the interpreter so handlers run promptly.
        while not stopping.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
