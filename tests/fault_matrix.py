"""The fault matrix: what each injected fault must do to each call. Tests check it; docs render it.

Run ``python -m tests.fault_matrix > docs/fault-matrix.md`` after changing it; a test fails while
the docs and this table differ.
"""

from __future__ import annotations

from typing import NamedTuple

# operation label -> emulator operation name
OPERATIONS = {
    "token": "token.get",
    "get": "flowInstances.get",
    "list": "flowInstances.search",
    "cancel": "flowInstances.cancel",
    "trigger": "flows.trigger",
}

# fault label -> EmulatorState.inject() arguments (the hook under test uses a 0.5 s timeout)
FAULTS = {
    "latency 0.2 s": {"kind": "latency", "seconds": 0.2},
    "reset before processing": {"kind": "reset_before"},
    "reset after processing": {"kind": "reset_after"},
    "429 + Retry-After": {"kind": "http_429", "retry_after": "0"},
    "503": {"kind": "http_5xx", "status": 503},
    "500": {"kind": "http_5xx", "status": 500},
    "HTML 502 page": {"kind": "html", "status": 502},
    "truncated JSON": {"kind": "truncated"},
    "non-JSON 200": {"kind": "non_json"},
    "slow body (read timeout)": {"kind": "slow_body", "seconds": 1.5},
    "unknown code 99999": {"kind": "unknown_code"},
    "token expired": {"kind": "token_expired"},
}


class Outcome(NamedTuple):
    """What the call must do: ``ok`` or ``error``, and how many requests the faulted operation gets."""

    result: str
    attempts: int
    note: str = ""


OK1, OK2 = Outcome("ok", 1), Outcome("ok", 2)
UNKNOWN = Outcome("error", 1, "clear error naming code 99999; not repeated")
RESOLVED = Outcome("ok", 2, "2nd cancel refused; read shows CANCEL: already_final")
ADOPTED = Outcome("ok", 1, "no reply, but a search finds the started instance: used, not re-triggered")
RETRIED_AFTER_SEARCH = Outcome("ok", 2, "a search shows nothing started, then it is repeated")

# Most faults give one outcome, whatever the operation: retried once and then fine (OK2), but for these.
_SAME_FOR_ALL = {"latency 0.2 s": OK1, "unknown code 99999": UNKNOWN}
EXPECTED: dict[tuple[str, str], Outcome] = {
    (fault, op): _SAME_FOR_ALL.get(fault, OK2) for fault in FAULTS for op in OPERATIONS
}
EXPECTED[("token expired", "token")] = Outcome("ok", 1, "expired tokens are replaced by a new one")
for _fault in ("reset after processing", "truncated JSON", "slow body (read timeout)"):
    EXPECTED[(_fault, "cancel")] = RESOLVED
    EXPECTED[(_fault, "trigger")] = ADOPTED
for _fault in ("reset before processing", "500", "HTML 502 page", "non-JSON 200"):
    EXPECTED[(_fault, "trigger")] = RETRIED_AFTER_SEARCH


class Hostile(NamedTuple):
    """A class of hostile gateway (tests/test_hostile_gateway.py): what the provider does, and its bound."""

    behaviour: str
    bound: str
    test: str


# class -> behaviour, bound asserted by the test, the test (in tests/test_hostile_gateway.py)
HOSTILE: dict[str, Hostile] = {
    "redirect (301, 302, 303, 307, 308), any call incl. the token service": Hostile(
        "not followed by either transport: `EnOSAPIError` naming the status and the Location's origin "
        "(never its path or query); nothing reaches the other server; a redirected cancel reports no outcome",
        "1 request per call, not retried",
        "test_redirects_are_not_followed_by_either_transport, test_a_redirected_cancel_reports_no_outcome, "
        "test_a_redirected_token_request_sends_no_credentials_elsewhere",
    ),
    "trickle (a byte every 0.05 s, in the headers or the body)": Hostile(
        "one deadline per request (connect, send, headers, body) = the connection's `timeout`, or "
        '`on_kill`\'s 3 s: `EnOSConnectionError` "no reply ... within N s"',
        "client hangs up before half the reply was sent; 1 request (retries 0)",
        "test_a_trickling_gateway_meets_one_deadline_in_both_transports, "
        "test_on_kill_cancels_within_its_budget_against_a_trickling_gateway",
    ),
    "stall (request read, nothing sent)": Hostile(
        "`EnOSConnectionError` at the deadline, both transports",
        "1 request (retries 0)",
        "test_a_stalled_gateway_meets_the_deadline_in_both_transports",
    ),
    "clamped paging (every pageNo gets the last page, `count` = its length)": Hostile(
        "a page with no new instance id ends the series; the kill switch pages with the same loop",
        "2 page requests per series; kill switch: 2 passes of 2 pages",
        "test_a_gateway_that_clamps_page_numbers_ends_the_search, "
        "test_the_kill_switch_ends_against_a_clamping_gateway",
    ),
    "endless paging (new ids on every page, `count` keeps growing)": Hostile(
        "stops at the cap (twice the first total's pages plus one; at most 100,000 instances' worth) "
        "with a warning that the result may be incomplete",
        "7 page requests for a first count of 6 at page size 2",
        "test_a_gateway_that_never_runs_out_stops_at_the_cap_with_a_warning",
    ),
    "oversize and malformed envelopes": Hostile(
        "`EnOSAPIError`: bodies over 32 MiB (read no further), JSON deeper than 64, non-finite or "
        "overflowing numbers, `code` not an integer or digit string (`0.9`, `false`, `[0]`), code 0 "
        "with a non-2xx status, non-JSON or invalid UTF-8; quoted text clipped at 2,048 characters with "
        "the original length stated",
        "1 request (retries 0); a cancel answered without an envelope is repeated through "
        "`cancel_timeout`, then fails: never `cancelled`",
        "test_a_malformed_reply_is_a_typed_error_in_both_transports, "
        "test_a_cancel_answered_without_an_envelope_is_not_reported_cancelled, "
        "tests/_protocol/test_reply_properties.py",
    ),
    "a trigger's code-0 reply without a usable `flowInstanceId` (missing, a number, other shapes)": Hostile(
        "`EnOSAPIError`: no instance is reported triggered",
        "1 request, not repeated",
        "test_a_trigger_reply_without_a_usable_instance_id_is_no_trigger",
    ),
    'bad tokens (CR LF, non-ASCII, 5,000 characters, not text; `expire` `"7200s"`, `true`, -1)': Hostile(
        "`EnOSAPIError` from `get_access_token` that describes the token without quoting it",
        "no Batch call is made with it",
        "test_a_bad_token_reply_is_a_typed_error_that_never_quotes_the_token, "
        "tests/_protocol/test_reply_properties.py",
    ),
}


def render() -> str:
    """Return the Markdown table of :data:`EXPECTED`."""
    lines = [
        "# Fault matrix",
        "",
        "Generated by `python -m tests.fault_matrix` from the table "
        "`tests/emulator/test_faults.py` checks against",
        "the emulator: each cell is one test that injects the fault once into that call, then checks the",
        "result, the number of requests the faulted operation received, and that no flow instance was",
        "left in a wrong state. `ok N` = succeeded after N requests; `error N` = failed with a clear error.",
        "The hook ran with a 0.5 s timeout and the default policy (3 retries, 60 s budget).",
        "",
        "| fault | " + " | ".join(OPERATIONS) + " |",
        "|---|" + "---|" * len(OPERATIONS),
    ]
    notes: dict[str, int] = {}
    for fault in FAULTS:
        cells = []
        for op in OPERATIONS:
            outcome = EXPECTED[(fault, op)]
            cell = f"{outcome.result} {outcome.attempts}"
            if outcome.note:
                number = notes.setdefault(outcome.note, len(notes) + 1)
                cell += f" [{number}]"
            cells.append(cell)
        lines.append(f"| {fault} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.extend(f"[{number}] {note}" + "  " for note, number in notes.items())
    lines += [
        "",
        "## Hostile gateways",
        "",
        "Scripted servers on loopback (`tests/hostile_gateway.py`), one class per row, against the public",
        "API over both transports (`requests` and `aiohttp`); the tests in `tests/test_hostile_gateway.py`",
        "assert what the server saw and write the seconds each case took to `build/hostile-gateway.json`.",
        "",
        "| class | behaviour | bound | test |",
        "|---|---|---|---|",
    ]
    lines.extend(f"| {name} | {row.behaviour} | {row.bound} | {row.test} |" for name, row in HOSTILE.items())
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
