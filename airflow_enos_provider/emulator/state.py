"""Hold the emulator's in-memory model of an EnOS tenant and answer its API operations.

Everything that changes or reads the model takes the single :attr:`EmulatorState.lock`, so the
HTTP handler threads and a test driving the state directly always see one consistent tenant.
Instance progress is computed lazily from the clock when read, never by timers, so a manual clock
fully controls what the API reports.
"""

from __future__ import annotations

import functools
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from airflow_enos_provider.emulator.faults import Fault, FaultPlan
from airflow_enos_provider.protocol.signing import token_encryption

STATUS_NAMES: dict[int, str] = {
    -1: "FAIL",
    0: "INIT",
    1: "SUCCESS",
    2: "RUNNING",
    3: "SUSPEND",
    4: "INTERNAL_ERROR",
    5: "WAIT",
    6: "READY",
    7: "TIMEOUT",
    8: "CANCEL",
    9: "RERUN",
    10: "SKIP",
}
STATUS_CODES: dict[str, int] = {name: code for code, name in STATUS_NAMES.items()}
FINAL_STATUSES: frozenset[int] = frozenset({-1, 1, 4, 7, 8, 10})
ACTIVE_STATUSES: frozenset[int] = frozenset({0, 2, 3, 5, 6, 9})
CANCEL_FINAL_CHOICES: tuple[str, ...] = ("error", "success")

#: How long after a trigger call the same flow refuses another trigger, in seconds.
TRIGGER_COOLDOWN_SECONDS = 60.0
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 10
SORT_FIELDS: tuple[str, ...] = ("createTime", "updateTime", "startTime", "triggerTime", "endTime")

# Token-service codes, carried in the v2.0 envelope's ``status``.
TOKEN_DUPLICATED = 1001
TOKEN_APP_UNKNOWN = 1002
TOKEN_ENCRYPTION_INVALID = 1003
TOKEN_INVALID_PARAMETER = 1004
TOKEN_PARAMETER_EMPTY = 1202
TOKEN_EXPIRED = 1203
TOKEN_REFRESH_FAILED = 1204

# Batch Processing v2.1 business codes, carried in ``code``.
BP_USER_MISMATCH = 62101
BP_INVALID_PARAMETER = 62102
BP_NO_PRIVILEGE = 62103
BP_LOCKED = 62105
BP_INTERNAL = 62109


class SeedApp(TypedDict):
    """An application registration: the key pair a client signs with."""

    access_key: str
    secret_key: str


class SeedUser(TypedDict, total=False):
    """A user of the tenant; ``user_id`` and ``org_id`` are required."""

    user_id: str
    org_id: str
    locked: bool


class SeedFlow(TypedDict, total=False):
    """A workflow; only ``flow_id`` is required."""

    flow_id: int
    name: str
    owner: str
    locked: bool
    init_seconds: float
    run_seconds: float
    tasks: list[str]


class SeedInstance(TypedDict, total=False):
    """A pre-existing flow instance; ``instance_id`` and ``flow_id`` are required.

    ``status`` is a name (``"RUNNING"``) or an int code; ``trigger_time`` is in epoch milliseconds;
    ``parameters`` is an object or a JSON string; ``type`` is 0 manual, 1 periodic, 2 temporary.
    """

    instance_id: str
    flow_id: int
    status: str | int
    owner: str
    trigger_time: int
    parameters: dict[str, Any] | str
    type: int


class SeedSettings(TypedDict, total=False):
    """Run-time settings a seed may carry."""

    cancel_final: str
    token_ttl: float


class Seed(TypedDict, total=False):
    """The whole seed document (a dict or the JSON file it was read from); every key is optional."""

    apps: list[SeedApp]
    users: list[SeedUser]
    flows: list[SeedFlow]
    instances: list[SeedInstance]
    settings: SeedSettings


class ApiError(Exception):
    """Signal a business error that the server returns inside the reply envelope."""

    def __init__(self, code: int, msg: str) -> None:
        """Build the error.

        :param code: the EnOS code (``status`` for the token service, ``code`` for v2.1).
        :param msg: the envelope's ``msg``.
        """
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


class ManualClock:
    """Provide a clock that only moves when :meth:`advance` is called."""

    def __init__(self, start: float | None = None) -> None:
        """Start the clock.

        :param start: the initial epoch time in seconds; the current wall time when None.
        """
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """Return the current clock time in epoch seconds."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new time.

        :param seconds: how far to move; must not be negative.
        """
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds
            return self._now


@dataclass(frozen=True)
class RecordedRequest:
    """Describe one HTTP request the emulator received (never any header value).

    :param method: the HTTP method.
    :param path: the URL path without the query.
    :param query: the decoded query parameters (first value of each name).
    :param operation: e.g. ``"token.get"`` or ``"flowInstances.cancel"``; None for unknown routes.
    :param body: the JSON body when it parsed to an object, else None (``accessToken`` is masked).
    :param code: the EnOS code in the reply (``status`` or ``code``), None when the reply had none.
    :param http_status: the HTTP status of the reply.
    :param connection_id: a number unique to the TCP connection the request came on (from 1).
    :param peer_port: the client's source port of that connection.
    :param fault: the injected fault that hit this request, if any.
    """

    method: str
    path: str
    query: dict[str, str]
    operation: str | None
    body: dict[str, Any] | None
    code: int | None
    http_status: int
    connection_id: int
    peer_port: int
    fault: str | None = None


@dataclass
class _App:
    access_key: str
    secret_key: str


@dataclass
class _User:
    user_id: str
    org_id: str
    locked: bool = False


@dataclass
class _Flow:
    flow_id: int
    name: str
    owner: str
    locked: bool
    init_seconds: float
    run_seconds: float
    tasks: list[str]
    last_trigger_call: float | None = None


@dataclass
class _Token:
    app_key: str
    expires_at: float


@dataclass
class _Instance:
    instance_id: str
    flow_id: int
    owner: str
    trigger_time: float
    created: float
    seq: int
    parameters: str = "{}"
    type: int = 0
    first_task: int = 0
    # While schedule_base is set, status/times/progress derive from the clock; once frozen, the
    # stored fields are the truth.
    schedule_base: float | None = None
    init_seconds: float = 0.0
    run_seconds: float = 0.0
    status: int = 0
    start_time: float | None = None
    end_time: float | None = None
    updated: float = 0.0
    progress: float = 0.0
    # Transitions made before the schedule was frozen (or the seeded status); see _history().
    history: list[tuple[float, int]] = field(default_factory=list)


@dataclass
class _Resolved:
    status: int
    start_time: float | None
    end_time: float | None
    updated: float
    progress: float


def parse_status(status: str | int) -> int:
    """Return the int code of a flow-instance status given by name or code.

    :param status: a name such as ``"RUNNING"`` (any case) or an int code such as ``2``.
    """
    if isinstance(status, bool):
        raise ValueError(f"invalid flow-instance status: {status!r}")
    if isinstance(status, int):
        code = status
    elif isinstance(status, str) and status.strip().lstrip("-").isdigit():
        code = int(status.strip())
    elif isinstance(status, str) and status.strip().upper() in STATUS_CODES:
        return STATUS_CODES[status.strip().upper()]
    else:
        raise ValueError(f"invalid flow-instance status: {status!r}")
    if code not in STATUS_NAMES:
        raise ValueError(f"invalid flow-instance status: {status!r}")
    return code


def format_time(epoch_seconds: float | None) -> str:
    """Return an API time string (``yyyy-MM-dd HH:mm:ss``, UTC), or ``""`` when not set.

    :param epoch_seconds: the time in epoch seconds, or None.
    """
    if epoch_seconds is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch_seconds))


def _check_cancel_final(value: str) -> str:
    if value not in CANCEL_FINAL_CHOICES:
        raise ValueError(f"cancel_final must be one of {CANCEL_FINAL_CHOICES}, not {value!r}")
    return value


def _check_ttl(value: float) -> float:
    ttl = float(value)
    if not ttl > 0:
        raise ValueError(f"token_ttl must be positive, not {value!r}")
    return ttl


def _int_value(value: object, name: str) -> int:
    # JSON clients send numbers, query strings send digits; both are accepted, booleans are not.
    if isinstance(value, bool):
        raise ApiError(BP_INVALID_PARAMETER, f"Invalid parameter: {name}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ApiError(BP_INVALID_PARAMETER, f"Invalid parameter: {name}")


def _optional_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    return _int_value(value, name)


def _required_str(source: Mapping[str, Any], name: str) -> str:
    value = source.get(name)
    if value is None or value == "":
        raise ApiError(BP_INVALID_PARAMETER, f"Invalid parameter: {name} is required")
    if not isinstance(value, str):
        raise ApiError(BP_INVALID_PARAMETER, f"Invalid parameter: {name}")
    return value


def _task_statuses(status: int, progress: float, count: int) -> list[int]:
    """Return per-task statuses consistent with an instance status and its run progress."""
    if count == 0:
        return []
    done = min(max(int(progress * count), 0), count - 1)
    if status in (2, 3, 9):
        return [1] * done + [status] + [0] * (count - done - 1)
    if status == 8:
        return [1] * done + [8] * (count - done)
    if status in (-1, 4, 7):
        # A failed run is shown as failing in its last task, with the earlier ones succeeded.
        return [1] * (count - 1) + [status]
    return [status] * count


def _check_keys(
    kind: str, item: object, allowed: Iterable[str], required: Iterable[str] = ()
) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise ValueError(f"seed {kind} must be an object, not {item!r}")
    unknown = set(item) - set(allowed)
    if unknown:
        raise ValueError(f"unknown key(s) in seed {kind}: {', '.join(sorted(unknown))}")
    missing = [name for name in required if name not in item]
    if missing:
        raise ValueError(f"seed {kind} {dict(item)!r} lacks {', '.join(missing)}")
    return item


class EmulatorState:
    """Hold one emulated EnOS tenant: apps, users, flows, instances, tokens and the request log.

    Every public method is thread-safe. Times given to and reported by the clock are epoch
    seconds; the API itself speaks milliseconds and ``yyyy-MM-dd HH:mm:ss`` strings.
    """

    def __init__(self, *, clock: Callable[[], float] | str | None = None) -> None:
        """Create an empty tenant.

        Cancelling a finished instance replies 62102 (:attr:`cancel_final` ``"error"``) and tokens
        live 7200 s (:attr:`token_ttl`) until a seed's settings or the properties change them.

        :param clock: a callable returning epoch seconds, ``"manual"`` for a :class:`ManualClock`
            starting at the current wall time, or None for :func:`time.time`.
        """
        if clock == "manual":
            clock = ManualClock()
        elif isinstance(clock, str):
            raise ValueError(f"clock must be a callable, 'manual' or None, not {clock!r}")
        self.clock: Callable[[], float] = clock if clock is not None else time.time
        self.lock = threading.RLock()
        self._cancel_final = "error"
        self._token_ttl = 7200.0
        self._latency = 0.0
        self._apps: dict[str, _App] = {}
        self._users: dict[str, _User] = {}
        self._flows: dict[int, _Flow] = {}
        self._instances: dict[str, _Instance] = {}
        self._tokens: dict[str, _Token] = {}
        self._app_tokens: dict[str, str] = {}
        self._issued: list[str] = []
        self._seen_encryptions: set[str] = set()
        self._requests: list[RecordedRequest] = []
        self._after: dict[str, list[Callable[[], None]]] = {}
        self._signatures: list[str] = []
        # Seconds a request's apim-timestamp may differ from the clock; None checks nothing (the
        # real gateway's tolerance is undocumented).
        self.max_skew: float | None = None
        self.faults = FaultPlan()
        self._connections = 0
        self._seq = 0

    # ----------------------------------------------------------------- settings and clock

    @property
    def cancel_final(self) -> str:
        """What cancelling a finished instance does: ``"error"`` or ``"success"``."""
        with self.lock:
            return self._cancel_final

    @cancel_final.setter
    def cancel_final(self, value: str) -> None:
        with self.lock:
            self._cancel_final = _check_cancel_final(value)

    @property
    def latency(self) -> float:
        """Seconds the server waits before answering each request, like a gateway far away (default 0)."""
        return self._latency

    @latency.setter
    def latency(self, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"latency must be >= 0 seconds, got {value!r}")
        self._latency = float(value)

    @property
    def token_ttl(self) -> float:
        """The lifetime of newly issued tokens in seconds (tokens already issued keep theirs)."""
        with self.lock:
            return self._token_ttl

    @token_ttl.setter
    def token_ttl(self, value: float) -> None:
        with self.lock:
            self._token_ttl = _check_ttl(value)

    def now(self) -> float:
        """Return the emulator's clock in epoch seconds."""
        return self.clock()

    def now_ms(self) -> int:
        """Return the emulator's clock in epoch milliseconds (what ``getCurrentTime`` replies)."""
        return int(self.clock() * 1000)

    def advance(self, seconds: float) -> float:
        """Move a manual clock forward and return the new time in epoch seconds.

        :param seconds: how far to move the clock.
        :raises RuntimeError: when the emulator was not built with ``clock="manual"`` (or a
            :class:`ManualClock`).
        """
        if not isinstance(self.clock, ManualClock):
            raise RuntimeError("advance() needs the emulator to be built with clock='manual'")
        return self.clock.advance(seconds)

    # ----------------------------------------------------------------- seeding and test hooks

    def load_seed(self, seed: Mapping[str, Any]) -> None:
        """Add everything a seed document describes, and apply its settings.

        :param seed: a :class:`Seed` mapping.
        :raises ValueError: on unknown keys, duplicates or references to unknown flows.
        """
        seed = _check_keys("document", seed, Seed.__annotations__)
        with self.lock:
            for item in seed.get("apps") or []:
                app = _check_keys("app", item, SeedApp.__annotations__, ("access_key", "secret_key"))
                self.add_app(app["access_key"], app["secret_key"])
            for item in seed.get("users") or []:
                user = _check_keys("user", item, SeedUser.__annotations__, ("user_id", "org_id"))
                self.add_user(user["user_id"], user["org_id"], locked=bool(user.get("locked", False)))
            for item in seed.get("flows") or []:
                flow = _check_keys("flow", item, SeedFlow.__annotations__, ("flow_id",))
                self.add_flow(
                    int(flow["flow_id"]),
                    name=flow.get("name"),
                    owner=flow.get("owner"),
                    locked=bool(flow.get("locked", False)),
                    init_seconds=float(flow.get("init_seconds", 1.0)),
                    run_seconds=float(flow.get("run_seconds", 30.0)),
                    tasks=flow.get("tasks"),
                )
            for item in seed.get("instances") or []:
                inst = _check_keys("instance", item, SeedInstance.__annotations__, ("instance_id", "flow_id"))
                self.add_instance(
                    inst["instance_id"],
                    int(inst["flow_id"]),
                    status=inst.get("status", "RUNNING"),
                    owner=inst.get("owner"),
                    trigger_time_ms=inst.get("trigger_time"),
                    parameters=inst.get("parameters"),
                    type=int(inst.get("type", 0)),
                )
            settings = _check_keys("settings", seed.get("settings") or {}, SeedSettings.__annotations__)
            if "cancel_final" in settings:
                self.cancel_final = settings["cancel_final"]
            if "token_ttl" in settings:
                self.token_ttl = settings["token_ttl"]

    def add_app(self, access_key: str, secret_key: str) -> None:
        """Register an application key pair (replacing the secret of an existing key).

        :param access_key: the app's access key (``appKey`` in token requests).
        :param secret_key: the app's secret.
        """
        with self.lock:
            self._apps[access_key] = _App(access_key, secret_key)

    def add_user(self, user_id: str, org_id: str, locked: bool = False) -> None:
        """Register a user (replacing an existing one with the same id).

        :param user_id: the ``userId`` query value.
        :param org_id: the ``orgId`` the user belongs to.
        :param locked: whether the account is locked (every call then fails with 62105).
        """
        with self.lock:
            self._users[user_id] = _User(user_id, org_id, locked)

    def add_flow(
        self,
        flow_id: int,
        name: str | None = None,
        owner: str | None = None,
        locked: bool = False,
        init_seconds: float = 1.0,
        run_seconds: float = 30.0,
        tasks: Iterable[str] | None = None,
    ) -> None:
        """Register a workflow.

        :param flow_id: the flow's int id.
        :param name: the flow name; ``flow_<id>`` when None.
        :param owner: the owning user id; when None, the first registered user (or ``""``).
        :param locked: whether the workflow is locked.
        :param init_seconds: how long a triggered instance stays INIT before RUNNING.
        :param run_seconds: how long it then stays RUNNING before SUCCESS.
        :param tasks: the task ids of the flow's graph; ``["main"]`` when None.
        :raises ValueError: when the flow id already exists.
        """
        with self.lock:
            if flow_id in self._flows:
                raise ValueError(f"flow {flow_id} already exists")
            if owner is None:
                owner = next(iter(self._users), "")
            self._flows[flow_id] = _Flow(
                flow_id=flow_id,
                name=name if name is not None else f"flow_{flow_id}",
                owner=owner,
                locked=locked,
                init_seconds=max(float(init_seconds), 0.0),
                run_seconds=max(float(run_seconds), 0.0),
                tasks=list(tasks) if tasks is not None else ["main"],
            )

    def add_instance(
        self,
        instance_id: str,
        flow_id: int,
        status: str | int = "RUNNING",
        owner: str | None = None,
        *,
        trigger_time_ms: int | None = None,
        parameters: Mapping[str, Any] | str | None = None,
        type: int = 0,
    ) -> str:
        """Add an instance that keeps its status until cancelled or changed (it has no schedule).

        :param instance_id: the instance id.
        :param flow_id: the id of an existing flow.
        :param status: the status name or code.
        :param owner: the owning user id; the flow's owner when None.
        :param trigger_time_ms: the trigger time in epoch ms; the clock's time when None.
        :param parameters: the instance parameters as an object or a JSON string.
        :param type: 0 manual, 1 periodic, 2 temporary.
        :return: the instance id.
        :raises ValueError: when the id exists or the flow does not.
        """
        code = parse_status(status)
        params = _parameters_string(parameters) if parameters is not None else "{}"
        with self.lock:
            if instance_id in self._instances:
                raise ValueError(f"instance {instance_id!r} already exists")
            flow = self._flows.get(flow_id)
            if flow is None:
                raise ValueError(f"instance {instance_id!r} refers to unknown flow {flow_id}")
            now = self.now()
            trigger = now if trigger_time_ms is None else trigger_time_ms / 1000
            started = code not in (0, 5, 6)
            self._seq += 1
            self._instances[instance_id] = _Instance(
                instance_id=instance_id,
                flow_id=flow_id,
                owner=owner if owner is not None else flow.owner,
                trigger_time=trigger,
                created=now,
                seq=self._seq,
                parameters=params,
                type=type,
                status=code,
                start_time=trigger if started else None,
                end_time=now if code in FINAL_STATUSES else None,
                updated=now,
                progress=1.0 if code in (1, 10) else 0.0,
                history=[(now, code)],
            )
            return instance_id

    def set_user_locked(self, user_id: str, locked: bool) -> None:
        """Lock or unlock a user account.

        :param user_id: an existing user id.
        :param locked: the new state.
        """
        with self.lock:
            self._users[user_id].locked = locked

    def set_flow_locked(self, flow_id: int, locked: bool) -> None:
        """Lock or unlock a workflow.

        :param flow_id: an existing flow id.
        :param locked: the new state.
        """
        with self.lock:
            self._flows[flow_id].locked = locked

    def set_instance_status(self, instance_id: str, status: str | int) -> None:
        """Force an instance's status, stopping its schedule (e.g. to make it FAIL).

        :param instance_id: an existing instance id.
        :param status: the status name or code.
        """
        code = parse_status(status)
        with self.lock:
            self._freeze(self._instances[instance_id], code)

    def instance_status(self, instance_id: str) -> int:
        """Return an instance's current status code, with the clock applied.

        :param instance_id: an existing instance id.
        """
        with self.lock:
            return self._resolve(self._instances[instance_id], self.now()).status

    def status_history(self, instance_id: str) -> list[tuple[float, str]]:
        """Return an instance's status changes so far, oldest first, as (clock time, status name).

        :param instance_id: an existing instance id.
        """
        with self.lock:
            inst = self._instances[instance_id]
            return [(when, STATUS_NAMES[code]) for when, code in self._history(inst, self.now())]

    def instance(self, instance_id: str, viewer: str | None = None) -> dict[str, Any]:
        """Return an instance as the Get Flow Instance API returns it (the FlowInstance object).

        :param instance_id: an existing instance id.
        :param viewer: the user asking, for ``hasEditPri``; the owner when None.
        """
        with self.lock:
            inst = self._instances[instance_id]
            return self._instance_json(inst, self.now(), viewer if viewer is not None else inst.owner)

    def instance_ids(self) -> list[str]:
        """Return every instance id, oldest first."""
        with self.lock:
            return [i.instance_id for i in sorted(self._instances.values(), key=lambda i: i.seq)]

    def flow(self, flow_id: int, viewer: str | None = None) -> dict[str, Any]:
        """Return a flow as the Get Flow API returns it.

        :param flow_id: an existing flow id.
        :param viewer: the user asking, for ``hasEditPri``; the owner when None.
        """
        with self.lock:
            flow = self._flows[flow_id]
            return self._flow_json(flow, viewer if viewer is not None else flow.owner)

    # ----------------------------------------------------------------- tokens

    def expire_tokens(self) -> None:
        """Make every token issued so far expired as of now."""
        with self.lock:
            now = self.now()
            for token in self._tokens.values():
                token.expires_at = min(token.expires_at, now)

    def issued_tokens(self) -> list[str]:
        """Return every access token ever issued, oldest first."""
        with self.lock:
            return list(self._issued)

    def token_get(self, body: object) -> dict[str, Any]:
        """Answer ``token/get``: return ``data`` or raise :class:`ApiError` with a token-service code.

        :param body: the parsed JSON body.
        """
        with self.lock:
            app = self._check_token_request(body, ())
            now = self.now()
            current = self._app_tokens.get(app.access_key)
            record = self._tokens.get(current) if current else None
            if current is not None and record is not None and record.expires_at > now:
                # Rounded up so a still-valid token never reports 0 seconds left.
                return {"accessToken": current, "expire": math.ceil(record.expires_at - now)}
            return self._issue(app, now)

    def token_refresh(self, body: object) -> dict[str, Any]:
        """Answer ``token/refresh``: issue a fresh token and expire the one being refreshed.

        :param body: the parsed JSON body (the ``token/get`` fields plus ``accessToken``).
        """
        with self.lock:
            app = self._check_token_request(body, ("accessToken",))
            assert isinstance(body, dict)
            old = self._tokens.get(str(body["accessToken"]))
            if old is None or old.app_key != app.access_key:
                raise ApiError(TOKEN_REFRESH_FAILED, "Failed to refresh access token")
            now = self.now()
            old.expires_at = min(old.expires_at, now)
            return self._issue(app, now)

    def authenticate(self, access_token: str | None) -> tuple[str, str | None]:
        """Classify an ``apim-accesstoken`` header and return the app secret to verify with.

        :param access_token: the header value, or None when absent.
        :return: ``("ok", secret)``, ``("expired", None)`` or ``("unknown", None)``.
        """
        with self.lock:
            record = self._tokens.get(access_token) if access_token else None
            if record is None:
                return "unknown", None
            if record.expires_at <= self.now():
                return "expired", None
            app = self._apps.get(record.app_key)
            if app is None:
                return "unknown", None
            return "ok", app.secret_key

    def _check_token_request(self, body: object, extra: tuple[str, ...]) -> _App:
        if not isinstance(body, dict):
            raise ApiError(TOKEN_INVALID_PARAMETER, "Invalid parameter")
        for name in ("appKey", "timestamp", "encryption", *extra):
            if body.get(name) in (None, ""):
                raise ApiError(TOKEN_PARAMETER_EMPTY, f"Parameter {name} is empty")
        timestamp = body["timestamp"]
        if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float, str)):
            raise ApiError(TOKEN_INVALID_PARAMETER, "Invalid parameter: timestamp")
        try:
            timestamp_ms = int(timestamp)
        except ValueError:
            raise ApiError(TOKEN_INVALID_PARAMETER, "Invalid parameter: timestamp") from None
        app = self._apps.get(str(body["appKey"]))
        if app is None:
            raise ApiError(TOKEN_APP_UNKNOWN, "AppKey does not exist")
        encryption = str(body["encryption"]).lower()
        if encryption != token_encryption(app.access_key, timestamp_ms, app.secret_key):
            raise ApiError(TOKEN_ENCRYPTION_INVALID, "Encryption is not valid")
        if encryption in self._seen_encryptions:
            raise ApiError(TOKEN_DUPLICATED, "Duplicated encryption")
        self._seen_encryptions.add(encryption)
        return app

    def _issue(self, app: _App, now: float) -> dict[str, Any]:
        token = secrets.token_hex(16)
        ttl = self._token_ttl
        self._tokens[token] = _Token(app.access_key, now + ttl)
        self._app_tokens[app.access_key] = token
        self._issued.append(token)
        return {"accessToken": token, "expire": int(ttl)}

    # ----------------------------------------------------------------- request log

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every HTTP request received, in order (a copy)."""
        with self.lock:
            return list(self._requests)

    def record(self, request: RecordedRequest) -> None:
        """Append a request to the log (called by the server before it replies).

        :param request: the request to record.
        """
        with self.lock:
            self._requests.append(request)
            callbacks = self._after.pop(request.operation or "", [])
        for callback in callbacks:
            callback()

    def note_signature(self, signature: str) -> None:
        """Remember a signature that verified (tests check none of them reaches a log)."""
        with self.lock:
            self._signatures.append(signature)

    def seen_signatures(self) -> list[str]:
        """Return every signature that verified so far."""
        with self.lock:
            return list(self._signatures)

    def inject(self, kind: str, operation: str = "*", **options: Any) -> Fault:
        """Put a fault in force; see :mod:`airflow_enos_provider.emulator.faults` for the kinds.

        :param kind: e.g. ``"reset_after"``, ``"http_5xx"``, ``"slow_body"``.
        :param operation: e.g. ``"flowInstances.cancel"``; ``"*"`` for every operation.
        :param options: ``times``, ``fraction``, ``seconds``, ``status``, ``retry_after``.
        """
        return self.faults.add(Fault(kind, operation, **options))

    def after(self, operation: str, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, right after the next ``operation`` is handled and before it is answered.

        Lets a test make something happen between two calls of a client, such as an instance
        finishing between the client's read and its cancel.

        :param operation: an operation name such as ``"flowInstances.search"``.
        :param callback: what to do; it may call this state's methods.
        """
        with self.lock:
            self._after.setdefault(operation, []).append(callback)

    def clear_requests(self) -> None:
        """Forget every recorded request (the connection count is kept)."""
        with self.lock:
            self._requests.clear()

    def count(self, operation: str) -> int:
        """Return how many recorded requests were for an operation.

        :param operation: an operation name such as ``"flowInstances.cancel"``.
        """
        with self.lock:
            return sum(1 for r in self._requests if r.operation == operation)

    @property
    def connections_opened(self) -> int:
        """The number of TCP connections accepted so far."""
        with self.lock:
            return self._connections

    def register_connection(self) -> int:
        """Count a newly accepted TCP connection and return its id (from 1)."""
        with self.lock:
            self._connections += 1
            return self._connections

    # ----------------------------------------------------------------- Batch Processing v2.1

    def check_user(self, query: Mapping[str, str]) -> str:
        """Validate the ``userId``/``orgId`` of a v2.1 call and return the user id.

        :param query: the decoded query parameters.
        """
        user_id = query.get("userId") or ""
        org_id = query.get("orgId") or ""
        if not user_id or not org_id:
            raise ApiError(BP_INVALID_PARAMETER, "Invalid parameter: userId/orgId is required")
        with self.lock:
            user = self._users.get(user_id)
            if user is None or user.org_id != org_id:
                raise ApiError(BP_USER_MISMATCH, "User does not exist or does not match orgId")
            if user.locked:
                raise ApiError(BP_LOCKED, "Account is locked")
            return user_id

    def api_cancel(self, user_id: str, body: Mapping[str, Any]) -> str:
        """Answer ``flowInstances?action=cancel`` and return ``data``.

        :param user_id: the validated caller.
        :param body: the JSON body.
        """
        instance_id = _required_str(body, "flowInstId")
        with self.lock:
            inst = self._instances.get(instance_id)
            if inst is None:
                raise ApiError(BP_INVALID_PARAMETER, "Instance not found")
            if inst.owner != user_id:
                raise ApiError(BP_NO_PRIVILEGE, "User has no privilege")
            if self._flows[inst.flow_id].locked:
                raise ApiError(BP_LOCKED, "Workflow is locked")
            if self._resolve(inst, self.now()).status in FINAL_STATUSES:
                if self._cancel_final == "error":
                    raise ApiError(BP_INVALID_PARAMETER, "Instance is already finished")
                return ""
            self._freeze(inst, 8)
            return ""

    def api_get_instance(self, user_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        """Answer ``flowInstances?action=get`` and return the FlowInstance.

        :param user_id: the validated caller.
        :param query: the decoded query parameters.
        """
        instance_id = _required_str(query, "flowInstId")
        with self.lock:
            inst = self._instances.get(instance_id)
            if inst is None:
                raise ApiError(BP_INVALID_PARAMETER, "Instance not found")
            return self._instance_json(inst, self.now(), user_id)

    def api_search(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Answer ``flowInstances?action=search`` and return ``{flowInsts, count}``.

        :param user_id: the validated caller.
        :param body: the JSON body.
        """
        type_filter = _optional_int(body, "type")
        from_ms = _optional_int(body, "fromTriggerTime")
        to_ms = _optional_int(body, "toTriggerTime")
        owner = body.get("owner") or None
        expression = body.get("expression") or None
        if owner is not None and not isinstance(owner, str):
            raise ApiError(BP_INVALID_PARAMETER, "Invalid parameter: owner")
        if expression is not None and not isinstance(expression, str):
            raise ApiError(BP_INVALID_PARAMETER, "Invalid parameter: expression")
        statuses = _status_filter(body.get("status"))
        page_no, page_size, sorters = _pagination(body.get("pagination"))
        with self.lock:
            now = self.now()
            rows: list[tuple[_Instance, _Resolved]] = []
            for inst in self._instances.values():
                resolved = self._resolve(inst, now)
                flow_name = self._flows[inst.flow_id].name
                trigger_ms = int(inst.trigger_time * 1000)
                if type_filter is not None and inst.type != type_filter:
                    continue
                if owner is not None and inst.owner != owner:
                    continue
                if expression is not None and not (
                    expression.lower() in inst.instance_id.lower() or expression.lower() in flow_name.lower()
                ):
                    continue
                if from_ms is not None and trigger_ms < from_ms:
                    continue
                if to_ms is not None and trigger_ms > to_ms:
                    continue
                if statuses is not None and resolved.status not in statuses:
                    continue
                rows.append((inst, resolved))
            # Stable sorts applied last-key-first give a multi-key sort; seq breaks ties newest first.
            rows.sort(key=lambda row: row[0].seq, reverse=True)
            for sort_field, descending in reversed(sorters):
                rows.sort(key=functools.partial(_row_key, sort_field), reverse=descending)
            page = rows[(page_no - 1) * page_size : page_no * page_size]
            insts = []
            for inst, _resolved in page:
                item = self._instance_json(inst, now, user_id)
                item["isCancelled"] = item["status"] == 8
                insts.append(item)
            return {"flowInsts": insts, "count": len(rows)}

    def api_trigger(self, user_id: str, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Answer ``flows?action=trigger|updateAndTrigger|triggerFromTask`` and return the new id.

        :param user_id: the validated caller (not checked for ownership: undocumented).
        :param action: which of the three trigger actions.
        :param body: the JSON body.
        """
        flow_id = _optional_int(body, "flowId")
        if flow_id is None:
            raise ApiError(BP_INVALID_PARAMETER, "Invalid parameter: flowId is required")
        trigger_ms = _optional_int(body, "triggerTime")
        parameters = "{}"
        if action == "updateAndTrigger":
            if body.get("parameters") is None:
                raise ApiError(BP_INVALID_PARAMETER, "Invalid parameter: parameters is required")
            try:
                parameters = _parameters_string(body["parameters"])
            except ValueError:
                raise ApiError(BP_INVALID_PARAMETER, "Invalid parameter: parameters") from None
        task_id = _required_str(body, "taskId") if action == "triggerFromTask" else None
        with self.lock:
            flow = self._flows.get(flow_id)
            if flow is None:
                raise ApiError(BP_INVALID_PARAMETER, "Flow not found")
            if flow.locked:
                raise ApiError(BP_LOCKED, "Workflow is locked")
            first_task = 0
            if task_id is not None:
                if task_id not in flow.tasks:
                    raise ApiError(BP_INVALID_PARAMETER, "Task not found")
                first_task = flow.tasks.index(task_id)
            now = self.now()
            for inst in self._instances.values():
                if inst.flow_id == flow_id and self._resolve(inst, now).status in ACTIVE_STATUSES:
                    raise ApiError(BP_INVALID_PARAMETER, "Flow is already running")
            if flow.last_trigger_call is not None and now - flow.last_trigger_call < TRIGGER_COOLDOWN_SECONDS:
                raise ApiError(BP_INVALID_PARAMETER, "Flow was triggered within a minute")
            trigger = now if trigger_ms is None else trigger_ms / 1000
            base_id = f"{flow_id}-{time.strftime('%Y%m%d%H%M', time.gmtime(trigger))}"
            instance_id, suffix = base_id, 1
            while instance_id in self._instances:
                suffix += 1
                instance_id = f"{base_id}-{suffix}"
            flow.last_trigger_call = now
            self._seq += 1
            self._instances[instance_id] = _Instance(
                instance_id=instance_id,
                flow_id=flow_id,
                owner=user_id,
                trigger_time=trigger,
                created=now,
                seq=self._seq,
                parameters=parameters,
                type=0,
                first_task=first_task,
                # A future trigger time waits for that time; a past one (backfill) starts now.
                schedule_base=max(now, trigger),
                init_seconds=flow.init_seconds,
                run_seconds=flow.run_seconds,
                updated=now,
            )
            return {"flowInstanceId": instance_id}

    def api_get_flow(self, user_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        """Answer ``flows?action=get`` and return the Flow.

        :param user_id: the validated caller.
        :param query: the decoded query parameters.
        """
        raw = query.get("flowId")
        if not raw:
            raise ApiError(BP_INVALID_PARAMETER, "Invalid parameter: flowId is required")
        flow_id = _int_value(raw, "flowId")
        with self.lock:
            flow = self._flows.get(flow_id)
            if flow is None:
                raise ApiError(BP_INVALID_PARAMETER, "Flow not found")
            return self._flow_json(flow, user_id)

    # ----------------------------------------------------------------- internals (lock held)

    def _resolve(self, inst: _Instance, now: float) -> _Resolved:
        base = inst.schedule_base
        if base is None:
            return _Resolved(inst.status, inst.start_time, inst.end_time, inst.updated, inst.progress)
        start = base + inst.init_seconds
        end = start + inst.run_seconds
        if now < start:
            return _Resolved(0, None, None, inst.updated, 0.0)
        if now < end:
            return _Resolved(2, start, None, max(start, inst.updated), (now - start) / inst.run_seconds)
        return _Resolved(1, start, end, max(end, inst.updated), 1.0)

    def _history(self, inst: _Instance, now: float) -> list[tuple[float, int]]:
        if inst.schedule_base is None:
            return list(inst.history)
        start = inst.schedule_base + inst.init_seconds
        end = start + inst.run_seconds
        steps = [(inst.schedule_base, 0), (start, 2), (end, 1)]
        return inst.history + [(when, code) for when, code in steps if when <= now]

    def _freeze(self, inst: _Instance, status: int) -> None:
        now = self.now()
        current = self._resolve(inst, now)
        inst.history = [*self._history(inst, now), (now, status)]
        start, end = current.start_time, current.end_time
        if status in FINAL_STATUSES:
            if current.status not in FINAL_STATUSES or end is None:
                end = now
        else:
            end = None
            if status in (2, 3, 9) and start is None:
                start = now
        inst.schedule_base = None
        inst.status = status
        inst.start_time = start
        inst.end_time = end
        inst.updated = now
        inst.progress = current.progress

    def _instance_json(self, inst: _Instance, now: float, viewer: str) -> dict[str, Any]:
        flow = self._flows[inst.flow_id]
        resolved = self._resolve(inst, now)
        tasks = flow.tasks
        statuses = [10] * inst.first_task + _task_statuses(
            resolved.status, resolved.progress, len(tasks) - inst.first_task
        )
        graph = {"tasks": [{"taskId": t, "status": s} for t, s in zip(tasks, statuses, strict=True)]}
        return {
            "instanceId": inst.instance_id,
            "flowId": inst.flow_id,
            "flowName": flow.name,
            "status": resolved.status,
            "statusDesc": STATUS_NAMES[resolved.status],
            "type": inst.type,
            "triggerTime": format_time(inst.trigger_time),
            "startTime": format_time(resolved.start_time),
            "endTime": format_time(resolved.end_time),
            "owner": inst.owner,
            "parameters": inst.parameters,
            "graph": json.dumps(graph, separators=(",", ":")),
            "calDt": format_time(inst.trigger_time),
            "hasEditPri": viewer == inst.owner,
            "hasReadPri": True,
        }

    def _flow_json(self, flow: _Flow, viewer: str) -> dict[str, Any]:
        owner = self._users.get(flow.owner)
        graph = {"tasks": [{"taskId": t} for t in flow.tasks]}
        return {
            "flowId": flow.flow_id,
            "flowName": flow.name,
            "owner": flow.owner,
            "locked": flow.locked,
            # Undocumented in the API reference; modelled as "the owner's account is locked".
            "isUserLocked": bool(owner and owner.locked),
            "type": 0,
            "graph": json.dumps(graph, separators=(",", ":")),
            "hasEditPri": viewer == flow.owner,
            "hasReadPri": True,
        }


def _parameters_string(parameters: object) -> str:
    if isinstance(parameters, str):
        if not isinstance(json.loads(parameters), dict):
            raise ValueError("parameters must be a JSON object")
        return parameters
    if isinstance(parameters, Mapping):
        return json.dumps(dict(parameters), separators=(",", ":"), ensure_ascii=False)
    raise ValueError("parameters must be an object or a JSON string")


def _status_filter(value: object) -> set[int] | None:
    if value is None or value == "" or value == []:
        return None
    parts: list[Any]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, list):
        parts = list(value)
    else:
        parts = [value]
    try:
        return {parse_status(p) for p in parts}
    except ValueError:
        raise ApiError(BP_INVALID_PARAMETER, "Invalid parameter: status") from None


def _pagination(value: object) -> tuple[int, int, list[tuple[str, bool]]]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ApiError(BP_INVALID_PARAMETER, "Invalid parameter: pagination")
    page_no = _optional_int(value, "pageNo")
    page_size = _optional_int(value, "pageSize")
    page_no = 1 if page_no is None else page_no
    page_size = DEFAULT_PAGE_SIZE if page_size is None else page_size
    if page_no < 1:
        raise ApiError(BP_INVALID_PARAMETER, "Invalid parameter: pageNo must be >= 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ApiError(BP_INVALID_PARAMETER, f"Invalid parameter: pageSize must be 1 to {MAX_PAGE_SIZE}")
    raw_sorters = value.get("sorters") or [{"field": "triggerTime", "order": "DESC"}]
    if not isinstance(raw_sorters, list):
        raise ApiError(BP_INVALID_PARAMETER, "Invalid parameter: sorters")
    sorters: list[tuple[str, bool]] = []
    for sorter in raw_sorters:
        if not isinstance(sorter, dict) or sorter.get("field") not in SORT_FIELDS:
            raise ApiError(BP_INVALID_PARAMETER, "Invalid parameter: sorters")
        order = str(sorter.get("order") or "DESC").upper()
        if order not in ("ASC", "DESC"):
            raise ApiError(BP_INVALID_PARAMETER, "Invalid parameter: sorters")
        sorters.append((sorter["field"], order == "DESC"))
    return page_no, page_size, sorters


def _row_key(sort_field: str, row: tuple[_Instance, _Resolved]) -> tuple[bool, float]:
    inst, resolved = row
    value = {
        "createTime": inst.created,
        "updateTime": resolved.updated,
        "startTime": resolved.start_time,
        "triggerTime": inst.trigger_time,
        "endTime": resolved.end_time,
    }[sort_field]
    # Unset times sort before every set time, so they come last in the default DESC order.
    return (value is not None, -math.inf if value is None else value)
