"""OpenLineage for the EnOS operators: a run facet naming the EnOS flow instance(s) a task started or
cancelled, and the parent run a trigger task can hand to its flow as parameters.

Needs the ``openlineage`` extra (``apache-airflow-providers-openlineage``). The operators import
this module only inside their OpenLineage methods and when ``openlineage_inject_parent=True``, so
DAG parsing never loads OpenLineage, and the provider imports cleanly without the extra.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.facet_v2 import RunFacet

from airflow_enos_provider._validation import to_parameters
from airflow_enos_provider.exceptions import EnOSError, EnOSValidationError

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The key of :class:`EnOSFlowRunFacet` in a run's facets.
FACET_KEY = "enosFlow"

#: The parameters ``openlineage_inject_parent=True`` adds, named as OpenLineage's integrations read
#: them from the environment: the standard context (JSON, parent and root run) and the older
#: ``namespace/name/run id`` pair, so a flow's shell task can export whichever its tool reads.
PARENT_PARAMETER_KEYS = ("OPENLINEAGE_CONTEXT", "OPENLINEAGE_PARENT_ID", "OPENLINEAGE_ROOT_PARENT_ID")

_DOCS = "https://github.com/airflow-enos-provider/airflow-enos-provider/blob/main/docs/howto/lineage.rst"


@attrs.define
class EnOSFlowRunFacet(RunFacet):
    """The EnOS flow instance(s) a task started or cancelled, as the task's code-0 replies showed them.

    :param action: ``"trigger"`` (:class:`~.EnOSTriggerFlowOperator`) or ``"cancel"``
        (:class:`~.CancelFlowInstanceOperator`).
    :param flowId: the workflow id; None when a cancel was given instance ids only.
    :param flowName: the workflow's name as the last read of an instance showed it; None when the
        task read none (no wait).
    :param flowInstanceIds: the instances.
    :param statuses: each instance's final status, where the task read one.
    :param triggerTime: the trigger time EnOS accepted (its business time), ISO 8601 in UTC.
    :param triggerTimeMs: the same, ms since the epoch.
    :param businessDate: the day the flow processes (``${cal_dt}``, in EnOS's zone).
    :param consoleUrl: the instance's page in the EnOS console (the connection's ``console_url``),
        for a single instance.
    """

    action: str
    flowId: int | None = None  # OpenLineage facets are camelCase
    flowName: str | None = None
    flowInstanceIds: list[str] = attrs.Factory(list)
    statuses: dict[str, str] = attrs.Factory(dict)
    triggerTime: str | None = None
    triggerTimeMs: int | None = None
    businessDate: str | None = None
    consoleUrl: str | None = None

    # Ids, names and times: nothing here is a secret for the listener's redaction to look at.
    _additional_skip_redact: ClassVar[list[str]] = [
        "action", "flowId", "flowName", "flowInstanceIds", "statuses", "triggerTime", "triggerTimeMs",
        "businessDate", "consoleUrl",
    ]  # fmt: skip

    @staticmethod
    def _get_schema() -> str:
        return f"{_DOCS}#the-enosflow-run-facet"


def operator_lineage(facet: EnOSFlowRunFacet) -> OperatorLineage[Any, Any]:
    """Return what ``get_openlineage_facets_on_complete`` returns: the run facet, no datasets (EnOS
    flows do not say what they read or write)."""
    return OperatorLineage(run_facets={FACET_KEY: facet})


def trigger_facet(
    run: Mapping[str, Any], status: str | None, flow_name: str | None, console_url: str | None
) -> EnOSFlowRunFacet:
    """Return the facet of a trigger task's instance.

    :param run: the instance as :func:`~airflow_enos_provider.operators._reattach.run_facts` describes it.
    :param status: its final status, when the task waited for it.
    :param flow_name: the flow's name, when a read showed it.
    :param console_url: its console page, when the connection has a template.
    """
    flow_inst_id = str(run["flow_inst_id"])
    return EnOSFlowRunFacet(
        action="trigger",
        flowId=run.get("flow_id"),
        flowName=flow_name,
        flowInstanceIds=[flow_inst_id],
        statuses={} if status is None else {flow_inst_id: status},
        triggerTime=run.get("trigger_time_iso"),
        triggerTimeMs=run.get("trigger_time"),
        businessDate=run.get("business_date"),
        consoleUrl=console_url,
    )


def parent_run(context: Context) -> dict[str, str]:
    """Return the parameters naming this task's OpenLineage run (the child's parent) and its root.

    Built with the OpenLineage provider's own macros, as its Spark, dbt Cloud and Databricks
    injections are.

    :param context: the task's context (its ``ti``).
    """
    from airflow.providers.openlineage.plugins import macros as typed_macros

    macros: Any = typed_macros  # untyped functions
    ti = context["ti"]
    parent = {
        "namespace": macros.lineage_job_namespace(),
        "name": macros.lineage_job_name(ti),
        "run": macros.lineage_run_id(ti),
    }
    root = {  # the namespace as OpenLineage's Spark injection gives it: 2.3.0 has no root macro for it
        "namespace": macros.lineage_job_namespace(),
        "name": macros.lineage_root_job_name(ti),
        "run": macros.lineage_root_run_id(ti),
    }
    standard = {
        "parent": {
            "run": {"runId": parent["run"]},
            "job": {"namespace": parent["namespace"], "name": parent["name"]},
            "root": {
                "run": {"runId": root["run"]},
                "job": {"namespace": root["namespace"], "name": root["name"]},
            },
        }
    }
    return dict(
        zip(
            PARENT_PARAMETER_KEYS,
            (
                json.dumps(standard, separators=(",", ":")),
                "/".join((parent["namespace"], parent["name"], parent["run"])),
                "/".join((root["namespace"], root["name"], root["run"])),
            ),
            strict=True,
        )
    )


def with_parent_run(parameters: object, context: Context) -> tuple[list[dict[str, str]], dict[str, str]]:
    """Return the user's parameters (as EnOS takes them) followed by the parent-run ones, and those.

    :param parameters: the operator's ``parameters`` (rendered), or None.
    :param context: the task's context (its ``ti``).
    :raises EnOSValidationError: when the user's parameters already have one of the keys, checked
        first: a value the user chose is never replaced.
    """
    own = [] if parameters is None else to_parameters(parameters)
    if clash := [key for key in PARENT_PARAMETER_KEYS if key in {p["key"] for p in own}]:
        raise EnOSValidationError(
            f"parameters: key {clash[0]!r} is also one openlineage_inject_parent=True adds "
            f"({', '.join(PARENT_PARAMETER_KEYS)}); rename it, or leave openlineage_inject_parent off"
        )
    added = parent_run(context)
    return own + [{"key": key, "value": value} for key, value in added.items()], added


def cancel_facet(
    task: Any,
    flow_id: object,
    results: Mapping[str, Mapping[str, Any]],
    flow_names: Mapping[str, str],
    one_id: str | None,
) -> EnOSFlowRunFacet:
    """Return the facet of a cancel task's instances.

    :param task: the operator (its connection's ``console_url``).
    :param flow_id: the operator's ``flow_id`` (rendered); None when it was given instance ids, whose
        shared flow (an id is the flow id, a dash and a time) is named instead.
    :param results: the task's result, id to ``{"outcome", "status"}``.
    :param flow_names: id to flow name, where a read showed it.
    :param one_id: the instance, when the task cancels one (its console page is named).
    """
    ids = list(results)
    flows = {i.split("-", 1)[0] for i in ids}
    if flow_id is None and len(flows) == 1 and (only := next(iter(flows))).isdigit():
        flow_id = only
    flow = None if flow_id is None else int(str(flow_id))
    names = set(flow_names.values())
    return EnOSFlowRunFacet(
        action="cancel",
        flowId=flow,
        flowName=names.pop() if len(names) == 1 else None,
        flowInstanceIds=ids,
        statuses={i: r["status"] for i, r in results.items() if r.get("status")},
        consoleUrl=None if one_id is None else known_console_url(task, one_id, flow),
    )


def known_console_url(task: Any, flow_inst_id: str, flow_id: object) -> str | None:
    """Return the instance's console URL from what the task knows, without a request; None without
    a ``console_url`` template, or when the template needs a flow id not known here.

    :param task: the operator (its ``hook``, ``org_id``).
    :param flow_inst_id: the flow instance.
    :param flow_id: its workflow id, or None.
    """
    from airflow_enos_provider._connection import console_url

    try:
        template = task.hook.settings.console_url
        if template is None:
            return None
        return console_url(template, flow_inst_id, flow_id, task.org_id or task.hook.settings.org_id)
    except (EnOSError, EnOSValidationError):  # a link is never worth failing lineage for
        return None
