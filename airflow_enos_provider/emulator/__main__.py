"""Run the EnOS emulator from the command line until SIGTERM or SIGINT.

``python -m airflow_enos_provider.emulator --port 0 --seed seed.json`` prints exactly one line, the
base URL, so a script can read it and point an EnOS connection at it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_enos_provider.emulator.server import EnOSEmulator
from airflow_enos_provider.emulator.state import CANCEL_FINAL_CHOICES


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_enos_provider.emulator",
        description="Serve an emulated EnOS API gateway + Batch Processing Service v2.1.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    parser.add_argument("--seed", help="JSON file with apps, users, flows, instances and settings")
    parser.add_argument(
        "--cancel-final",
        choices=CANCEL_FINAL_CHOICES,
        help="reply to cancelling a finished instance (overrides the seed; default error)",
    )
    parser.add_argument(
        "--token-ttl", type=float, help="access-token lifetime in seconds (overrides the seed; default 7200)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added before answering each request (default 0)"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Start the emulator, print its URL and serve until SIGTERM/SIGINT; return the exit status.

    :param argv: the arguments without the program name; ``sys.argv[1:]`` when None.
    """
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(message)s")
    try:
        emulator = EnOSEmulator(args.seed, host=args.host, port=args.port)
        # Flags given on the command line always win over the seed's settings.
        if args.cancel_final is not None:
            emulator.state.cancel_final = args.cancel_final
        if args.token_ttl is not None:
            emulator.state.token_ttl = args.token_ttl
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
