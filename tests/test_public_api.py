"""The public API is pinned: each public module's ``__all__``, and nothing public outside it.

A public module is one whose dotted path has no ``_``-prefixed part (``airflow_enos_provider._protocol``
and ``operators._reattach`` are internals, free to change). Adding a public name means adding it here
too, on purpose; the reference (docs/api.rst) documents these names only.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "airflow_enos_provider"

# Module -> its sorted __all__, space-separated.
PUBLIC_API = {
    "airflow_enos_provider": "__version__",
    "airflow_enos_provider.emulator": (
        "ACTIVE_STATUSES EmulatorState EnOSEmulator FINAL_STATUSES ManualClock RecordedRequest "
        "STATUS_CODES STATUS_NAMES Seed connection_json load_seed_file parse_status"
    ),
    "airflow_enos_provider.emulator.__main__": "build_parser main show_instances show_requests",
    "airflow_enos_provider.emulator.auth": (
        "BAD_SIGNATURE EXPIRED INVALID_CREDENTIALS STALE_TIMESTAMP check_access"
    ),
    "airflow_enos_provider.emulator.errors": "AccessDenied ApiError invalid_parameter",
    "airflow_enos_provider.emulator.faults": (
        "Fault FaultKind FaultPlan FaultReply UNDOCUMENTED_CODE fault_reply"
    ),
    "airflow_enos_provider.emulator.inspection": (
        "INSTANCES PREFIX REQUESTS SIGNATURE_FIELDS answer instance_view is_inspection request_view"
    ),
    "airflow_enos_provider.emulator.models": (
        "ACTIVE_STATUSES App FINAL_STATUSES Flow Instance ManualClock NO_PARAMETERS Resolved STATUS_CODES "
        "STATUS_NAMES Token User parameters_string parse_status"
    ),
    "airflow_enos_provider.emulator.recorder": "RecordedRequest RequestRecorder masked_body",
    "airflow_enos_provider.emulator.responses": (
        "BatchHandler DEFAULT_PAGE_SIZE FLOW_SORT_FIELDS MAX_PAGE_SIZE NOT_FOUND Reply Request Responder "
        "SORT_FIELDS TOKEN_BUSINESS TokenHandler UNPARSEABLE batch_envelope batch_route cancel current_time "
        "disable_flow enable_flow get_flow get_instance get_task_instance get_task_log my_flows not_found "
        "search search_flows time_zone token_get token_refresh token_route "
        "trigger trigger_from_task update_and_trigger"
    ),
    "airflow_enos_provider.emulator.routes": ("BATCH_PREFIX Match ROUTES Route operation_of resolve"),
    "airflow_enos_provider.emulator.schedule": "Cron MAX_CATCH_UP Schedule",
    "airflow_enos_provider.emulator.seed": (
        "DEMO_SEED SEED_SCHEMA Seed SeedApp SeedFlow SeedInstance SeedSettings SeedTask SeedUser "
        "check_keys demo_seed load_seed_file"
    ),
    "airflow_enos_provider.emulator.server": "EnOSEmulator connection_json load_seed_file",
    "airflow_enos_provider.emulator.state": ("DEFAULT_LOG_LENGTH EmulatorState SearchQuery TriggerRequest"),
    "airflow_enos_provider.emulator.tasks": (
        "COMPLETE FAILED IN_PROGRESS NOT_STARTED RunState Task TaskRun format_time task_inst_id task_runs "
        "task_statuses"
    ),
    "airflow_enos_provider.emulator.tenant": (
        "CANCEL_FINAL_CHOICES DISABLE_RUNNING_CHOICES FIRST_TASK_ID SCHEDULE_REPEAT_CHOICES TIME_ZONE "
        "TRIGGER_REFUSED TRIGGER_RULES Tenant"
    ),
    "airflow_enos_provider.emulator.tokens": "DEFAULT_TOKEN_TTL TokenRequest TokenService check_ttl",
    "airflow_enos_provider.exceptions": (
        "EnOSAPIError EnOSAuthenticationError EnOSConnectionError EnOSError EnOSFlowInstanceError "
        "EnOSFlowNameError EnOSValidationError"
    ),
    "airflow_enos_provider.get_provider_info": "get_provider_info",
    "airflow_enos_provider.hooks.enos": "EnOSHook Started Statuses",
    "airflow_enos_provider.hooks.enos_base": "EnOSBaseHook",
    "airflow_enos_provider.links": "CONSOLE_URL_XCOM_KEY EnOSFlowInstanceLink push_console_url",
    "airflow_enos_provider.notifications.flow_instance": "EnOSCancelFlowInstanceNotifier",
    "airflow_enos_provider.operators.flow": "EnOSDisableFlowOperator EnOSEnableFlowOperator",
    "airflow_enos_provider.operators.flow_instance": "CancelFlowInstanceOperator EnOSTriggerFlowOperator",
    "airflow_enos_provider.sensors.flow_instance": "EnOSFlowInstanceSensor",
    "airflow_enos_provider.status": "EnOSFlowInstanceStatus",
    "airflow_enos_provider.testing": "",
    "airflow_enos_provider.testing.fixtures": (
        "DEFAULT_CONN_ID EnOSTestConnection connection_for running_emulator"
    ),
    "airflow_enos_provider.testing.pytest_plugin": (
        "SeedSource enos_connection enos_connection_factory enos_emulator enos_seed pytest_configure"
    ),
    "airflow_enos_provider.triggers.flow_instance": "EnOSFlowInstanceTrigger",
    "airflow_enos_provider.triggers.flow_instance_event": "EnOSFlowInstanceEventTrigger",
}
# The emulator and the pytest plugin are tools for tests, with an API of their own; the provider's
# API proper (hook, operators, sensor, trigger, notifier, link, exceptions, statuses) stays small.
MAX_PROVIDER_NAMES = 90
_TOOLS = ("airflow_enos_provider.emulator", "airflow_enos_provider.testing")


def _public_modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(part.startswith("_") and part != "__main__" for part in parts):
            continue
        if path.read_text(encoding="utf-8").strip():  # an empty package __init__ exports nothing
            modules[".".join(parts)] = path
    return modules


def _defined_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_the_public_modules_export_the_pinned_names():
    exported = {name: sorted(importlib.import_module(name).__all__) for name in _public_modules()}
    assert exported == {module: names.split() for module, names in PUBLIC_API.items()}


def test_every_exported_name_exists():
    for name, exports in PUBLIC_API.items():
        module = importlib.import_module(name)
        assert [n for n in exports.split() if not hasattr(module, n)] == [], name


def test_no_public_module_defines_a_public_name_outside_its_all():
    leaks = {}
    for name, path in _public_modules().items():
        public = {n for n in _defined_names(path) if not n.startswith("_")}
        if outside := public - set(importlib.import_module(name).__all__):
            leaks[name] = sorted(outside)
    assert leaks == {}


def test_the_provider_api_stays_small():
    provider = [
        n for module, names in PUBLIC_API.items() if not module.startswith(_TOOLS) for n in names.split()
    ]
    assert len(provider) <= MAX_PROVIDER_NAMES
