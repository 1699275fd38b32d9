"""The seed document that describes an emulated tenant, and its loading and validation."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypedDict

__all__ = [
    "DEMO_SEED",
    "SEED_SCHEMA",
    "Seed",
    "SeedApp",
    "SeedFlow",
    "SeedInstance",
    "SeedSettings",
    "SeedTask",
    "SeedUser",
    "check_keys",
    "demo_seed",
    "load_seed_file",
]

#: The demo tenant shipped in the package: what the command line serves without ``--seed``, and
#: what the pytest plugin's ``enos_emulator`` starts with.
DEMO_SEED: Path = Path(__file__).with_name("demo_seed.json")

#: The seed document's fields, for ``--help`` (docs/emulator.rst, "Seed files", says the same).
SEED_SCHEMA = """\
seed file: a JSON object; every key optional, unknown keys refused:
  apps:      [{access_key, secret_key}]           the key pairs clients sign with
  users:     [{user_id, org_id, locked?, name?}]  name: shown and searched as owner (default user_id)
  flows:     [{flow_id, name?, owner?, locked?, init_seconds?, run_seconds?, end_status?,
              fail_task?, tasks?, type?, parameters?, active?, cron?, schedule_every_ms?}]
             init_seconds/run_seconds: a triggered instance is INIT, then RUNNING, then its
             end_status (defaults 1, 30 and SUCCESS): run_seconds is how long it takes;
             end_status: any final status (FAIL, TIMEOUT, INTERNAL_ERROR, CANCEL, SKIP ...);
             fail_task: a task name: instances fail there (end_status FAIL unless another failure
             status is given), earlier tasks SUCCESS, later ones never start; that task's log ends
             with its error;
             tasks: names or {name, id?, log?, error?} (default ["main"]);
             type: 0 manual (default; 1 with a schedule), 1 periodic, 2 temporary;
             parameters: [{key, value}], a mapping or the JSON string of the list;
             active: Get Flow's active, whether the schedule is started (default true);
             cron: a Quartz cron in UTC ("0 0 2 * * ?"): while active, each fire time the
             clock passes starts a periodic instance; schedule_every_ms: emulator-only test
             aid instead of cron, a period in ms (e.g. 100) from when the flow is added
  instances: [{instance_id, flow_id, status?, owner?, trigger_time?, parameters?, type?}]
             status: a name (RUNNING, the default) or a code; trigger_time: epoch ms;
             an instance keeps its status until cancelled
  settings:  {cancel_final?: "error" | "success", token_ttl?: seconds,
              trigger_rule?: "same_minute_ids" | "wall_clock_minute" | "duplicates",
              trigger_interval?: seconds, disable_running?: "keep" | "cancel",
              schedule_repeat?: "success" | "error"}
             trigger_rule: how a second trigger of a flow is answered (undocumented; default
             same_minute_ids); trigger_interval: the wall_clock_minute rule's window (default 60);
             disable_running: what Disable Flow does to active instances (undocumented; keep);
             schedule_repeat: Disable of a disabled flow / Enable of an enabled one (undocumented)
"""


class SeedApp(TypedDict):
    """An application registration: the key pair a client signs with."""

    access_key: str
    secret_key: str


class SeedUser(TypedDict, total=False):
    """A user of the tenant; ``user_id`` and ``org_id`` are required.

    ``name`` is the user name owners are shown and searched by (the user id when not given).
    """

    user_id: str
    org_id: str
    locked: bool
    name: str


class SeedTask(TypedDict, total=False):
    """A task of a flow given as an object; only ``name`` is required.

    ``id`` is its task id (digits are numbered from 100001 when not given); ``log`` is the whole
    text its instances' logs serve; ``error`` is the last log line of a failed instance of it.
    """

    name: str
    id: str
    log: str
    error: str


class SeedFlow(TypedDict, total=False):
    """A workflow; only ``flow_id`` is required.

    ``tasks`` are names or :class:`SeedTask` objects; ``type`` is 0 manual (the default), 1 periodic,
    2 temporary; ``parameters`` is a list of ``{"key", "value"}`` objects, a mapping or the JSON
    string of such a list. A triggered instance is INIT for ``init_seconds``, RUNNING for
    ``run_seconds``, then ``end_status`` (SUCCESS by default); with ``fail_task`` (a task name) it
    fails at that task (``end_status`` FAIL unless another failure status is given). ``active`` is
    Get Flow's (the schedule started, default true); ``cron`` (a Quartz cron, UTC) makes the flow
    start a periodic instance at each fire time while active; ``schedule_every_ms`` is an
    emulator-only test aid instead of ``cron``: a period in milliseconds.
    """

    flow_id: int
    name: str
    owner: str
    locked: bool
    init_seconds: float
    run_seconds: float
    end_status: str | int
    fail_task: str
    tasks: list[str | SeedTask]
    type: int
    parameters: list[dict[str, str]] | dict[str, Any] | str
    active: bool
    cron: str
    schedule_every_ms: int


class SeedInstance(TypedDict, total=False):
    """A pre-existing flow instance; ``instance_id`` and ``flow_id`` are required.

    ``status`` is a name (``"RUNNING"``) or an int code; ``trigger_time`` is in epoch milliseconds;
    ``parameters`` is as a flow's (the flow's when not given); ``type`` (0 manual, 1 periodic,
    2 temporary) is the flow's when not given.
    """

    instance_id: str
    flow_id: int
    status: str | int
    owner: str
    trigger_time: int
    parameters: list[dict[str, str]] | dict[str, Any] | str
    type: int


class SeedSettings(TypedDict, total=False):
    """Run-time settings a seed may carry."""

    cancel_final: str
    token_ttl: float
    trigger_rule: str
    trigger_interval: float
    disable_running: str
    schedule_repeat: str


class Seed(TypedDict, total=False):
    """The whole seed document (a dict or the JSON file it was read from); every key is optional."""

    apps: list[SeedApp]
    users: list[SeedUser]
    flows: list[SeedFlow]
    instances: list[SeedInstance]
    settings: SeedSettings


def demo_seed() -> dict[str, Any]:
    """Return a fresh copy of the demo tenant (:data:`DEMO_SEED`): one app, one user, flow 2438."""
    return load_seed_file(DEMO_SEED)


def load_seed_file(seed: dict[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """Return a seed document, reading it from a JSON file when given a path.

    :param seed: the seed dict itself, or the path of a JSON file holding it.
    """
    if isinstance(seed, dict):
        return seed
    document = json.loads(Path(seed).read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"seed file {seed} must hold a JSON object")
    return document


def check_keys(
    kind: str, item: object, allowed: Iterable[str], required: Iterable[str] = ()
) -> Mapping[str, Any]:
    """Return a seed item when it is an object with only ``allowed`` keys and every ``required`` one.

    :param kind: what the item is, for errors.
    :param item: the item.
    :param allowed: the keys it may have.
    :param required: the keys it must have.
    :raises ValueError: naming the item and the keys.
    """
    if not isinstance(item, Mapping):
        raise ValueError(f"seed {kind} must be an object, not {item!r}")
    unknown = set(item) - set(allowed)
    if unknown:
        raise ValueError(f"unknown key(s) in seed {kind}: {', '.join(sorted(unknown))}")
    missing = [name for name in required if name not in item]
    if missing:
        raise ValueError(f"seed {kind} {dict(item)!r} lacks {', '.join(missing)}")
    return item
