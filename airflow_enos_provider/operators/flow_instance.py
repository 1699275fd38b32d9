"""Operators for EnOS Batch Processing flow instances.

Imported on every DAG parse: the HTTP stack is imported by the hook when a task runs, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_enos_provider.exceptions import EnOSError, EnOSValidationError
from airflow_enos_provider.validation import require_flow_inst_ids

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_enos_provider.hooks.enos import EnOSHook

IF_ALREADY_FINAL = ("skip", "fail")


class CancelFlowInstanceOperator(BaseOperator):
    """Cancel one or more EnOS flow instances; safe to repeat, so it can run as a teardown.

    When EnOS refuses a cancel, the instance is read: if it already finished, the task logs its final
    status and succeeds (``if_already_final="skip"``) or fails (``"fail"``); any other refusal fails
    the task with the EnOS code and message. With several ids, every id is tried and the task fails
    at the end listing each id that could not be cancelled and why.

    :param flow_inst_id: one flow-instance id or a list of them (templated).
    :param user_id: the EnOS user id that owns the instances; default: the connection's ``user_id``
        extra (templated).
    :param org_id: the OU id; default: the connection's ``org_id`` extra (templated).
    :param enos_conn_id: the ``enos`` connection to use (templated).
    :param if_already_final: ``"skip"`` (default) to succeed or ``"fail"`` to fail when an instance
        had already finished.
    :return: (XCom) ``{flow_inst_id: {"outcome": "cancelled" | "already_final", "status": ...}}``;
        ``status`` is the final status read after a refusal, None when EnOS accepted the cancel.
    """

    template_fields: Sequence[str] = ("flow_inst_id", "user_id", "org_id", "enos_conn_id")
    ui_color = "#f4a6a6"

    def __init__(
        self,
        *,
        flow_inst_id: str | list[str],
        user_id: str | None = None,
        org_id: str | None = None,
        enos_conn_id: str = "enos_default",
        if_already_final: str = "skip",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if if_already_final not in IF_ALREADY_FINAL:
            raise EnOSValidationError(
                f"if_already_final must be one of {', '.join(IF_ALREADY_FINAL)}, got {if_already_final!r}"
            )
        self.flow_inst_id = flow_inst_id
        self.user_id = user_id
        self.org_id = org_id
        self.enos_conn_id = enos_conn_id
        self.if_already_final = if_already_final

    @cached_property
    def hook(self) -> EnOSHook:
        """Return the hook for ``enos_conn_id`` (imported here to keep DAG parsing light)."""
        from airflow_enos_provider.hooks.enos import EnOSHook

        return EnOSHook(enos_conn_id=self.enos_conn_id)

    def execute(self, context: Context) -> dict[str, dict[str, Any]]:
        ids = require_flow_inst_ids(self.flow_inst_id)
        # Check the connection and identity before the first request, so a typo fails fast and clearly.
        self.hook.settings.batch_identity(self.user_id, self.org_id)
        results: dict[str, dict[str, Any]] = {}
        failures: dict[str, str] = {}
        try:
            for flow_inst_id in ids:
                try:
                    result = self.hook.ensure_flow_instance_stopped(
                        flow_inst_id, user_id=self.user_id, org_id=self.org_id
                    )
                except EnOSError as err:
                    self.log.error("Could not cancel EnOS flow instance %s: %s", flow_inst_id, err)
                    failures[flow_inst_id] = str(err)
                    continue
                results[flow_inst_id] = {"outcome": result["outcome"], "status": result["status"]}
                if result["outcome"] == "cancelled":
                    self.log.info("EnOS accepted the cancel of flow instance %s", flow_inst_id)
                    continue
                self.log.info(
                    "EnOS flow instance %s had already finished with status %s; nothing to cancel",
                    flow_inst_id,
                    result["status"],
                )
                if self.if_already_final == "fail":
                    failures[flow_inst_id] = f"already finished with status {result['status']}"
        finally:
            self.hook.close()
        if failures:
            listed = "\n".join(f"- {flow_inst_id}: {why}" for flow_inst_id, why in failures.items())
            raise EnOSError(f"{len(failures)} of {len(ids)} EnOS flow instance(s) not cancelled:\n{listed}")
        return results
