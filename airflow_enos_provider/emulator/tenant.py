"""The tenant an emulator holds: its apps, users, flows, instances and settings, and the test hooks.

:class:`~airflow_enos_provider.emulator.state.EmulatorState` adds the API's operations on top. A
test drives the tenant directly through these methods (seed it, lock a flow, force a status, move
the clock); every one takes :attr:`Tenant.lock`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar, cast, overload

from airflow_enos_provider._protocol.codes import EnOSFlowType
from airflow_enos_provider.emulator.models import (
    NO_PARAMETERS,
    App,
    Flow,
    Instance,
    ManualClock,
    User,
    parameters_string,
    parse_status,
)
from airflow_enos_provider.emulator.schedule import Cron, Schedule
from airflow_enos_provider.emulator.seed import (
    Seed,
    SeedApp,
    SeedFlow,
    SeedInstance,
    SeedSettings,
    SeedUser,
    check_keys,
)
from airflow_enos_provider.emulator.tasks import FAILED, Task, TaskRun
from airflow_enos_provider.emulator.tokens import TokenService, check_ttl
from airflow_enos_provider.status import EnOSFlowInstanceStatus as Status

__all__ = [
    "CANCEL_FINAL_CHOICES",
    "DISABLE_RUNNING_CHOICES",
    "FIRST_TASK_ID",
    "SCHEDULE_REPEAT_CHOICES",
    "TIME_ZONE",
    "TRIGGER_REFUSED",
    "TRIGGER_RULES",
    "Tenant",
]

# Generated task ids are digits like the docs' samples ("104443"), numbered from here.
FIRST_TASK_ID = 100001

CANCEL_FINAL_CHOICES: tuple[str, ...] = ("error", "success")
#: What Disable Flow does to the flow's instances that are still active; undocumented
#: (disable_flow.md: "Stop the scheduling"): ``keep`` lets them run on, ``cancel`` cancels them.
DISABLE_RUNNING_CHOICES: tuple[str, ...] = ("keep", "cancel")
#: What Disable Flow answers for a disabled flow (and Enable Flow for an enabled one); undocumented.
SCHEDULE_REPEAT_CHOICES: tuple[str, ...] = ("success", "error")
#: How a second trigger of one flow is answered; which one EnOS does is undocumented:
#: ``same_minute_ids`` refuses a trigger whose instance id (flow, trigger minute) exists,
#: ``wall_clock_minute`` refuses one within ``trigger_interval`` seconds of the flow's last accepted
#: trigger (the support site's Trigger Flow From Task page: "do not trigger the same workflow
#: repeatedly in 1 minute"), ``duplicates`` accepts both (instance ids then get a longer suffix).
TRIGGER_RULES: tuple[str, ...] = ("same_minute_ids", "wall_clock_minute", "duplicates")
#: The refusal's message: trigger_flow_from_task, support site (batch-processing-api 2.2.0-3.0.0).
TRIGGER_REFUSED = (
    "Cannot create workflow instance. Please check if the workflow or task exist, and do not trigger "
    "the same workflow repeatedly in 1 minute."
)
#: Get Timezone's reply (get_time_zone.md); the emulator writes its time strings in UTC.
TIME_ZONE = "GMT+0"
_T = TypeVar("_T")


class _Setting(Generic[_T]):
    """A tenant setting: read and written under the tenant's lock, checked when set.

    It keeps its value in the tenant's ``_<name>`` attribute, which the backend reads under the lock.
    """

    def __init__(
        self, doc: str, *, choices: tuple[_T, ...] = (), low: tuple[float, bool] | None = None
    ) -> None:
        self.__doc__ = doc
        self._choices = choices
        self._low = low  # (bound, whether the bound itself is allowed)

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, tenant: None, owner: type) -> _Setting[_T]: ...
    @overload
    def __get__(self, tenant: Tenant, owner: type) -> _T: ...
    def __get__(self, tenant: Tenant | None, owner: type) -> _T | _Setting[_T]:
        if tenant is None:
            return self
        with tenant.lock:
            return cast(_T, getattr(tenant, "_" + self._name))

    def __set__(self, tenant: Tenant, value: _T) -> None:
        if self._choices and value not in self._choices:
            raise ValueError(f"{self._name} must be one of {self._choices}, not {value!r}")
        if self._low is not None:
            bound, inclusive = self._low
            if not (value >= bound if inclusive else value > bound):  # type: ignore[operator]
                raise ValueError(
                    f"{self._name} must be {'>=' if inclusive else '>'} {bound} seconds, got {value!r}"
                )
            value = cast(_T, float(value))  # type: ignore[arg-type]
        with tenant.lock:
            setattr(tenant, "_" + self._name, value)


class Tenant:
    """Hold one emulated EnOS tenant's model; every public method is thread-safe.

    Times given to and reported by the clock are epoch seconds; the API itself speaks
    milliseconds and ``yyyy-MM-dd HH:mm:ss`` strings.
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
        # The _Setting values, each the first of its choices by default.
        self._cancel_final, self._disable_running = CANCEL_FINAL_CHOICES[0], DISABLE_RUNNING_CHOICES[0]
        self._schedule_repeat, self._trigger_rule = SCHEDULE_REPEAT_CHOICES[0], TRIGGER_RULES[0]
        self._trigger_interval = 60.0
        self._last_trigger: dict[int, float] = {}  # flow id -> clock time of its last accepted trigger
        self._latency = 0.0
        self._apps: dict[str, App] = {}
        self._users: dict[str, User] = {}
        self._flows: dict[int, Flow] = {}
        self._instances: dict[str, Instance] = {}
        self._tokens = TokenService(self._apps)
        self._seq = 0
        self._task_flows: dict[str, int] = {}  # task id -> its flow's id
        self._task_logs: dict[str, str] = {}  # task instance id -> the log set_task_log gave it
        self._next_task_id = FIRST_TASK_ID

    # ----------------------------------------------------------------- settings and clock

    cancel_final = _Setting[str](
        'What cancelling a finished instance does: ``"error"`` or ``"success"``.',
        choices=CANCEL_FINAL_CHOICES,
    )
    disable_running = _Setting[str](
        "What Disable Flow does to the flow's active instances: one of :data:`DISABLE_RUNNING_CHOICES`.",
        choices=DISABLE_RUNNING_CHOICES,
    )
    schedule_repeat = _Setting[str](
        "What disabling a disabled flow (enabling an enabled one) answers: one of "
        ":data:`SCHEDULE_REPEAT_CHOICES`.",
        choices=SCHEDULE_REPEAT_CHOICES,
    )
    trigger_rule = _Setting[str](
        "How a second trigger of one flow is answered: one of :data:`TRIGGER_RULES`.", choices=TRIGGER_RULES
    )
    trigger_interval = _Setting[float](
        "Seconds the ``wall_clock_minute`` rule refuses a flow's next trigger (60; tests shorten it).",
        low=(0, False),
    )
    latency = _Setting[float](
        "Seconds the server waits before answering each request, like a gateway far away (default 0).",
        low=(0, True),
    )

    @property
    def token_ttl(self) -> float:
        """The lifetime of newly issued tokens in seconds (tokens already issued keep theirs)."""
        with self.lock:
            return self._tokens.ttl

    @token_ttl.setter
    def token_ttl(self, value: float) -> None:
        with self.lock:
            self._tokens.ttl = check_ttl(value)

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
        with self.lock:
            seed = check_keys("document", seed, Seed.__annotations__)
            for item in seed.get("apps") or []:
                app = check_keys("app", item, SeedApp.__annotations__, ("access_key", "secret_key"))
                self.add_app(app["access_key"], app["secret_key"])
            for item in seed.get("users") or []:
                user = check_keys("user", item, SeedUser.__annotations__, ("user_id", "org_id"))
                self.add_user(
                    user["user_id"],
                    user["org_id"],
                    locked=bool(user.get("locked", False)),
                    name=user.get("name"),
                )
            for item in seed.get("flows") or []:
                flow = check_keys("flow", item, SeedFlow.__annotations__, ("flow_id",))
                self.add_flow(
                    int(flow["flow_id"]),
                    name=flow.get("name"),
                    owner=flow.get("owner"),
                    locked=bool(flow.get("locked", False)),
                    init_seconds=float(flow.get("init_seconds", 1.0)),
                    run_seconds=float(flow.get("run_seconds", 30.0)),
                    tasks=flow.get("tasks"),
                    type=flow.get("type"),
                    parameters=flow.get("parameters"),
                    end_status=flow.get("end_status"),
                    fail_task=flow.get("fail_task"),
                    active=bool(flow.get("active", True)),
                    cron=flow.get("cron"),
                    schedule_every_ms=flow.get("schedule_every_ms"),
                )
            for item in seed.get("instances") or []:
                inst = check_keys("instance", item, SeedInstance.__annotations__, ("instance_id", "flow_id"))
                self.add_instance(
                    inst["instance_id"],
                    int(inst["flow_id"]),
                    status=inst.get("status", "RUNNING"),
                    owner=inst.get("owner"),
                    trigger_time_ms=inst.get("trigger_time"),
                    parameters=inst.get("parameters"),
                    type=int(inst["type"]) if "type" in inst else None,
                )
            settings = check_keys("settings", seed.get("settings") or {}, SeedSettings.__annotations__)
            for name, value in settings.items():  # each a checked setting of the same name
                setattr(self, name, value)

    def add_app(self, access_key: str, secret_key: str) -> None:
        """Register an application key pair (replacing the secret of an existing key).

        :param access_key: the app's access key (``appKey`` in token requests).
        :param secret_key: the app's secret.
        """
        with self.lock:
            self._apps[access_key] = App(access_key, secret_key)

    def add_user(self, user_id: str, org_id: str, locked: bool = False, name: str | None = None) -> None:
        """Register a user (replacing an existing one with the same id).

        :param user_id: the ``userId`` query value.
        :param org_id: the ``orgId`` the user belongs to.
        :param locked: whether the account is locked (every call then fails with 62105).
        :param name: the user name owners are shown and searched by; the user id when None.
        """
        with self.lock:
            self._users[user_id] = User(user_id, org_id, locked, name or "")

    def add_flow(
        self,
        flow_id: int,
        name: str | None = None,
        owner: str | None = None,
        locked: bool = False,
        init_seconds: float = 1.0,
        run_seconds: float = 30.0,
        tasks: Iterable[str | Mapping[str, str]] | None = None,
        *,
        type: int | None = None,
        parameters: object = None,
        end_status: str | int | None = None,
        fail_task: str | None = None,
        active: bool = True,
        cron: str | None = None,
        schedule_every_ms: int | None = None,
    ) -> None:
        """Register a workflow.

        :param flow_id: the flow's int id.
        :param name: the flow name; ``flow_<id>`` when None.
        :param owner: the owning user id; when None, the first registered user (or ``""``).
        :param locked: whether the workflow is locked.
        :param init_seconds: how long a triggered instance stays INIT before RUNNING.
        :param run_seconds: how long it then stays RUNNING before SUCCESS.
        :param tasks: its tasks, each a name or ``{"name", "id", "log", "error"}`` (only ``name``
            required); ``["main"]`` when None. Ids not given are numbered from 100001.
        :param type: its scheduling type: 0 manual, 1 periodic, 2 temporary; None for 1 with a
            schedule, else 0.
        :param parameters: its parameters (a key/value list, a mapping or a JSON string); none when None.
        :param end_status: the final status its triggered instances reach after ``run_seconds``
            (a name or code); SUCCESS when None, FAIL when ``fail_task`` is given.
        :param fail_task: the name of the task at which its triggered instances fail: the tasks before
            it succeed, it gets the failure status (its log ends with its ``error``), later ones never start.
        :raises ValueError: when the flow id or a task id already exists, ``end_status`` is not a final
            status, ``fail_task`` names no task of the flow, or ``fail_task`` comes with a status that
            is not a failure, or a schedule is bad. A flow with no task
            (``tasks=[]``) is refused when triggered (62104, trigger_flow.md).
        :param active: Get Flow's ``active``: whether its schedule is started (Disable/Enable Flow).
        :param cron: its schedule, a Quartz cron in UTC (Get Flow's ``freq``): while the flow is active,
            each fire time the clock passes starts a periodic instance, queued behind an active one.
        :param schedule_every_ms: emulator-only test aid (not an EnOS field): instead of a cron, a
            period in milliseconds from when the flow is added, e.g. 100.
        """
        with self.lock:
            if flow_id in self._flows:
                raise ValueError(f"flow {flow_id} already exists")
            if owner is None:
                owner = next(iter(self._users), "")
            flow_tasks = [self._new_task(item) for item in (tasks if tasks is not None else ["main"])]
            ids = [task.task_id for task in flow_tasks]
            taken = [task_id for task_id in ids if task_id in self._task_flows or ids.count(task_id) > 1]
            if taken:
                raise ValueError(f"flow {flow_id}: task id(s) {', '.join(sorted(set(taken)))} already exist")
            end, failing = _outcome(flow_id, flow_tasks, end_status, fail_task)
            schedule = _schedule(flow_id, cron, schedule_every_ms, self.now())
            flow_type = EnOSFlowType(type if type is not None else 1 if schedule else 0)
            if schedule is not None and flow_type is not EnOSFlowType.PERIODIC:
                raise ValueError(f"flow {flow_id}: a schedule needs type 1 (periodic), not {flow_type.value}")
            self._flows[flow_id] = Flow(
                flow_id=flow_id,
                name=name if name is not None else f"flow_{flow_id}",
                owner=owner,
                locked=locked,
                init_seconds=max(float(init_seconds), 0.0),
                run_seconds=max(float(run_seconds), 0.0),
                end_status=end,
                fail_task=failing,
                tasks=flow_tasks,
                type=flow_type,
                parameters=NO_PARAMETERS if parameters is None else parameters_string(parameters),
                active=bool(active),
                schedule=schedule,
            )
            self._task_flows.update(dict.fromkeys(ids, flow_id))

    def add_instance(
        self,
        instance_id: str,
        flow_id: int,
        status: str | int = "RUNNING",
        owner: str | None = None,
        *,
        trigger_time_ms: int | None = None,
        parameters: object = None,
        type: int | None = None,
    ) -> str:
        """Add an instance that keeps its status until cancelled or changed (it has no schedule).

        :param instance_id: the instance id.
        :param flow_id: the id of an existing flow.
        :param status: the status name or code.
        :param owner: the owning user id; the flow's owner when None.
        :param trigger_time_ms: the trigger time in epoch ms; the clock's time when None.
        :param parameters: a key/value list, a mapping or a JSON string; the flow's when None.
        :param type: 0 manual, 1 periodic, 2 temporary; the flow's when None.
        :return: the instance id.
        :raises ValueError: when the id exists or the flow does not.
        """
        code = Status(parse_status(status))
        params = parameters_string(parameters) if parameters is not None else None
        with self.lock:
            flow = self._flow_of_new(instance_id, flow_id)
            now = self.now()
            self._seq += 1
            self._instances[instance_id] = Instance.seeded(
                code,
                now,
                instance_id=instance_id,
                flow_id=flow_id,
                owner=owner if owner is not None else flow.owner,
                trigger_time=now if trigger_time_ms is None else trigger_time_ms / 1000,
                seq=self._seq,
                parameters=flow.parameters if params is None else params,
                type=None if type is None else EnOSFlowType(type),
            )
            return instance_id

    def schedule_instance(
        self,
        instance_id: str,
        flow_id: int,
        end_at: float,
        *,
        end_status: str | int = "SUCCESS",
        start_at: float | None = None,
        owner: str | None = None,
        trigger_time_ms: int | None = None,
    ) -> str:
        """Add an instance that runs from ``start_at`` and reaches ``end_status`` at clock time ``end_at``.

        A test hook (no API creates one): instances of one flow that overlap or end in any order, as
        reruns can produce, and one added after its ``end_at`` shows as ended from the start (whether
        EnOS can list a finished instance late is undocumented; the event watcher is right either
        way). Its progress is computed from the clock, as a triggered instance's is.

        :param instance_id: the instance id.
        :param flow_id: the id of an existing flow.
        :param end_at: the clock time (epoch seconds) it ends at.
        :param end_status: the final status it ends in (a name or code).
        :param start_at: the clock time it starts RUNNING; the clock's time when None (or ``end_at`` if
            that is earlier).
        :param owner: the owning user id; the flow's owner when None.
        :param trigger_time_ms: its trigger time in epoch ms; its start when None.
        :return: the instance id.
        :raises ValueError: when the id exists, the flow does not, or ``end_status`` is not final.
        """
        end = Status(parse_status(end_status))
        if not end.is_final:
            raise ValueError(f"end_status {end.name} is not a final status")
        with self.lock:
            flow = self._flow_of_new(instance_id, flow_id)
            now = self.now()
            start = min(now if start_at is None else start_at, end_at)
            self._seq += 1
            self._instances[instance_id] = Instance(
                instance_id=instance_id,
                flow_id=flow_id,
                owner=owner if owner is not None else flow.owner,
                trigger_time=start if trigger_time_ms is None else trigger_time_ms / 1000,
                created=now,
                seq=self._seq,
                parameters=flow.parameters,
                schedule_base=start,
                run_seconds=end_at - start,
                end_status=end,
                updated=now,
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

    def set_flow_active(self, flow_id: int, active: bool) -> None:
        """Start or pause a workflow's schedule, as Enable/Disable Flow do but with no check.

        :param flow_id: an existing flow id.
        :param active: the new state (Get Flow's ``active``).
        """
        with self.lock:
            self._run_schedules(self.now())
            self._flows[flow_id].active = active

    def set_instance_status(self, instance_id: str, status: str | int) -> None:
        """Force an instance's status, stopping its schedule (e.g. to make it FAIL).

        :param instance_id: an existing instance id.
        :param status: the status name or code.
        """
        code = Status(parse_status(status))
        with self.lock:
            self._run_schedules(self.now())
            self._instances[instance_id].freeze(code, self.now())

    def instance_status(self, instance_id: str) -> int:
        """Return an instance's current status code, with the clock applied.

        :param instance_id: an existing instance id.
        """
        with self.lock:
            self._run_schedules(self.now())
            return self._instances[instance_id].resolve(self.now()).status.value

    def status_history(self, instance_id: str) -> list[tuple[float, str]]:
        """Return an instance's status changes so far, oldest first, as (clock time, status name).

        :param instance_id: an existing instance id.
        """
        with self.lock:
            self._run_schedules(self.now())
            return [
                (when, status.name) for when, status in self._instances[instance_id].history_at(self.now())
            ]

    def instance(self, instance_id: str, viewer: str | None = None) -> dict[str, Any]:
        """Return an instance as the Get Flow Instance API returns it (the FlowInstance object).

        :param instance_id: an existing instance id.
        :param viewer: the user asking, for ``hasEditPri``; the owner when None.
        """
        with self.lock:
            self._run_schedules(self.now())
            inst = self._instances[instance_id]
            return self._instance_json(inst, self.now(), viewer if viewer is not None else inst.owner)

    def set_task_log(self, task_inst_id: str, text: str) -> None:
        """Make a task instance's log ``text`` from now on (Get Task Instance Log serves it).

        :param task_inst_id: an existing task instance id, e.g. ``"100001-201908081020"``.
        :raises KeyError: when no instance has that task instance.
        """
        with self.lock:
            if self._task_run(task_inst_id, self.now()) is None:
                raise KeyError(task_inst_id)
            self._task_logs[task_inst_id] = text

    def instance_ids(self) -> list[str]:
        """Return every instance id, oldest first."""
        with self.lock:
            self._run_schedules(self.now())
            return [i.instance_id for i in sorted(self._instances.values(), key=lambda i: i.seq)]

    def flow(self, flow_id: int, viewer: str | None = None) -> dict[str, Any]:
        """Return a flow as the Get Flow API returns it.

        :param flow_id: an existing flow id.
        :param viewer: the user asking, for ``hasEditPri``; the owner when None.
        """
        with self.lock:
            flow = self._flows[flow_id]
            return self._flow_json(flow, viewer if viewer is not None else flow.owner)

    # ----------------------------------------------------------------- a flow's own schedule (lock held)

    def _run_schedules(self, now: float) -> None:
        """Start the periodic instances every active flow's schedule made due up to ``now``.

        Lazy, like an instance's progress: each read that can see instances calls this first, so a
        manual clock decides when a scheduled instance appears. A paused flow starts none, and the
        fire times it passed while paused are not made up when it is enabled again (undocumented).
        """
        for flow in self._flows.values():
            if flow.schedule is None:
                continue
            if not flow.active:
                flow.schedule.skip_to(now)
                continue
            for when in flow.schedule.due(now):
                base = f"{flow.flow_id}-{time.strftime('%Y%m%d%H%M%S', time.gmtime(when))}"
                self._queue_instance(flow, self._unique_id(base), flow.owner, when, when)

    def _queue_instance(
        self,
        flow: Flow,
        instance_id: str,
        owner: str,
        trigger: float,
        now: float,
        parameters: str | None = None,
        first_task: int = 0,
    ) -> None:
        """Add an instance that starts at ``max(now, trigger)``, or after the flow's active instance.

        trigger_flow.md: "The workflow only allows one instance to run at any one time ... it will be
        executed in sequence": an instance made while another is active waits (WAIT) behind it.
        """
        ahead = self._newest_active(flow.flow_id, now)
        self._seq += 1
        self._instances[instance_id] = Instance(
            instance_id=instance_id,
            flow_id=flow.flow_id,
            owner=owner,
            trigger_time=trigger,
            created=now,
            seq=self._seq,
            parameters=flow.parameters if parameters is None else parameters,
            first_task=first_task,
            # A future trigger time waits for that time; a past one (backfill) starts now.
            schedule_base=max(now, trigger),
            init_seconds=flow.init_seconds,
            run_seconds=flow.run_seconds,
            end_status=flow.end_status,
            fail_task=flow.fail_task,
            updated=now,
            history=[(now, Status.WAIT)] if ahead is not None else [],
            after=ahead,
        )

    def _active_instances(self, flow_id: int, now: float) -> list[Instance]:
        active = Status.active_statuses()
        own = [i for i in self._instances.values() if i.flow_id == flow_id]
        return [i for i in own if i.resolve(now).status in active]

    def _newest_active(self, flow_id: int, now: float) -> Instance | None:
        # Newest first (instances are only ever added, so insertion order is ``seq`` order): in a
        # queue the newest is usually active, so one read answers, and a schedule's many fires stay
        # linear in the instances rather than sorting them all for each fire.
        active = Status.active_statuses()
        newest_first = (i for i in reversed(self._instances.values()) if i.flow_id == flow_id)
        return next((i for i in newest_first if i.resolve(now).status in active), None)

    def _unique_id(self, base: str) -> str:
        # A second instance for the same time gets a two-digit suffix (undocumented; the samples show
        # only unique ids such as "2430-20190718075000"): still digits, a dash and digits.
        instance_id, n = base, 0
        while instance_id in self._instances:
            n += 1
            instance_id = f"{base}{n:02d}"
        return instance_id

    # ----------------------------------------------------------------- rendering (lock held)

    def _flow_of_new(self, instance_id: str, flow_id: int) -> Flow:
        # The flow a test adds an instance to; the id must be new.
        if instance_id in self._instances:
            raise ValueError(f"instance {instance_id!r} already exists")
        flow = self._flows.get(flow_id)
        if flow is None:
            raise ValueError(f"instance {instance_id!r} refers to unknown flow {flow_id}")
        return flow

    def _instance_json(self, inst: Instance, now: float, viewer: str) -> dict[str, Any]:
        return inst.to_json(self._flows[inst.flow_id], now, viewer, self._user_name(inst.owner))

    def _flow_json(self, flow: Flow, viewer: str) -> dict[str, Any]:
        return flow.to_json(viewer, self._users.get(flow.owner))

    def _user_name(self, user_id: str) -> str:
        user = self._users.get(user_id)
        return user.display_name if user is not None else user_id

    def _task_run(self, task_inst_id: str, now: float) -> TaskRun | None:
        self._run_schedules(now)
        task_id, _, suffix = task_inst_id.partition("-")
        flow = self._flows.get(self._task_flows.get(task_id, -1))
        if flow is None:
            return None
        # The usual id names the flow ("2438-2019..."); a seeded id may not, so look further.
        likely = self._instances.get(f"{flow.flow_id}-{suffix}")
        candidates = [likely] if likely is not None else []
        candidates += [i for i in self._instances.values() if i.flow_id == flow.flow_id and i is not likely]
        for inst in candidates:
            for run in inst.task_runs(flow, now):
                if run.task_inst_id == task_inst_id:
                    return run
        return None

    def _new_task(self, item: str | Mapping[str, str]) -> Task:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ValueError(f"a task must be a name or an object with a name, not {item!r}")
        unknown = set(item) - {"name", "id", "log", "error"}
        if unknown:
            raise ValueError(f"unknown key(s) in task {item['name']!r}: {', '.join(sorted(unknown))}")
        if "id" in item:
            task_id = str(item["id"])
            if not task_id or "-" in task_id:
                # A task instance id is the task id, a dash and the instance's suffix.
                raise ValueError(f"task id {task_id!r} must be non-empty and hold no '-'")
        else:
            while str(self._next_task_id) in self._task_flows:
                self._next_task_id += 1
            task_id = str(self._next_task_id)
            self._next_task_id += 1
        return Task(task_id, item["name"], item.get("log"), item.get("error"))


def _schedule(flow_id: int, cron: str | None, every_ms: int | None, now: float) -> Schedule | None:
    """Return a flow's schedule from its seed fields, or None for a flow without one."""
    if cron is not None and every_ms is not None:
        raise ValueError(f"flow {flow_id}: give cron or schedule_every_ms, not both")
    if every_ms is not None and (isinstance(every_ms, bool) or not isinstance(every_ms, int) or every_ms < 1):
        raise ValueError(f"flow {flow_id}: schedule_every_ms must be a positive integer, got {every_ms!r}")
    if cron is None and every_ms is None:
        return None
    return Schedule(None if cron is None else Cron(cron), every_ms, origin=now, until=now)


def _outcome(
    flow_id: int, tasks: list[Task], end_status: str | int | None, fail_task: str | None
) -> tuple[Status, int | None]:
    """Return how a flow's triggered instances end: the final status and the failing task's index."""
    end = Status.FAIL if end_status is None and fail_task is not None else Status.SUCCESS
    if end_status is not None:
        end = Status(parse_status(end_status))
    if not end.is_final:
        raise ValueError(f"flow {flow_id}: end_status {end.name} is not a final status")
    if fail_task is None:
        return end, None
    names = [task.name for task in tasks]
    if fail_task not in names:
        raise ValueError(f"flow {flow_id}: fail_task {fail_task!r} is none of its tasks {names}")
    if end not in FAILED:
        raise ValueError(
            f"flow {flow_id}: fail_task needs a failure end_status (FAIL, TIMEOUT...), not {end.name}"
        )
    return end, names.index(fail_task)
