"""Make signed calls to the EnOS API gateway and the Batch Processing Service v2.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlencode

import requests
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from airflow_enos_provider import __version__
from airflow_enos_provider.connection import CONN_TYPE, EnOSConnectionSettings
from airflow_enos_provider.envelope import TOKEN_EXPIRED, parse_reply
from airflow_enos_provider.exceptions import (
    EnOSAPIError,
    EnOSAuthenticationError,
    EnOSConnectionError,
    EnOSError,
    EnOSValidationError,
)
from airflow_enos_provider.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_enos_provider.signing import request_signature, token_encryption
from airflow_enos_provider.status import EnOSFlowInstanceStatus
from airflow_enos_provider.validation import require_flow_inst_id, require_text

TOKEN_PATH = "/apim-token-service/v2.0/token/get"
BATCH_PATH = "/batch-processing-service/v2.1"
JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
# Refusals after which reading the instance cannot change the verdict of a cancel.
_NOT_WORTH_A_READ = frozenset({62101, 62105})
_LIST_FILTERS = {
    "type": "type",
    "owner": "owner",
    "from_trigger_time": "fromTriggerTime",
    "to_trigger_time": "toTriggerTime",
    "fromTriggerTime": "fromTriggerTime",
    "toTriggerTime": "toTriggerTime",
    "sorters": "sorters",
}


class _TokenCache:
    """Access tokens shared by every hook in the process, per (gateway, access key)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self.clock = time.monotonic  # replaceable, so tests can step past a token's refresh time
        self._last_timestamp = 0

    def next_timestamp(self) -> int:
        # The token service refuses a repeated encryption (1001), so two requests in one millisecond
        # must not share a timestamp.
        self._last_timestamp = max(int(time.time() * 1000), self._last_timestamp + 1)
        return self._last_timestamp

    def clear(self) -> None:
        with self.lock:
            self.tokens.clear()


_TOKENS = _TokenCache()


def refresh_margin(expire_seconds: float) -> float:
    """Return how many seconds before expiry a token is replaced: 10% of its life, at most 5 minutes.

    :param expire_seconds: the token's lifetime as the token service gave it.
    """
    return min(300.0, expire_seconds * 0.1)


class EnOSHook(BaseHook):
    """Call the EnOS API gateway with the token-and-signature scheme, over one keep-alive session.

    Tokens are cached per process for each (gateway, access key) and replaced shortly before they
    expire, and once more when a call is refused because the token expired.

    :param enos_conn_id: the ``enos`` connection to use.
    """

    conn_name_attr = "enos_conn_id"
    default_conn_name = "enos_default"
    conn_type = CONN_TYPE
    hook_name = "EnOS"

    def __init__(self, enos_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.enos_conn_id = enos_conn_id

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the custom connection form fields (Airflow < 3.2; newer reads the provider info)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from wtforms import IntegerField, StringField

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            field_class = IntegerField if "integer" in spec["schema"]["type"] else StringField
            widgets[name] = field_class(
                spec["label"], widget=BS3TextFieldWidget(), description=spec["description"]
            )
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return the relabelled, hidden and placeholder fields (Airflow < 3.2)."""
        behaviour = UI_FIELD_BEHAVIOUR
        return {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        }

    @cached_property
    def settings(self) -> EnOSConnectionSettings:
        """Return the connection's validated settings (read once per hook)."""
        settings = EnOSConnectionSettings.from_connection(self.get_connection(self.enos_conn_id))
        mask_secret(settings.secret_key)
        return settings

    @cached_property
    def session(self) -> requests.Session:
        """Return this hook's keep-alive HTTP session."""
        session = requests.Session()
        session.headers["User-Agent"] = f"airflow-enos-provider/{__version__}"
        return session

    def get_conn(self) -> requests.Session:
        """Return this hook's HTTP session."""
        return self.session

    def close(self) -> None:
        """Close the HTTP session's pooled connections."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    # ----------------------------------------------------------------- Batch Processing operations

    def cancel_flow_instance(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> None:
        """Ask EnOS to cancel a flow instance.

        :param flow_inst_id: the instance id, e.g. ``2438-201908081020``.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :raises EnOSAPIError: when EnOS refuses (the error names the code and what to do).
        """
        flow_inst_id = require_flow_inst_id(flow_inst_id)
        self._batch(
            "cancel_flow_instance",
            "POST",
            "/flowInstances",
            "cancel",
            user_id=user_id,
            org_id=org_id,
            body={"flowInstId": flow_inst_id},
            flow_inst_id=flow_inst_id,
        )

    def get_flow_instance(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Return a flow instance as EnOS describes it (``status`` is the integer code).

        :param flow_inst_id: the instance id.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        flow_inst_id = require_flow_inst_id(flow_inst_id)
        data = self._batch(
            "get_flow_instance",
            "GET",
            "/flowInstances",
            "get",
            user_id=user_id,
            org_id=org_id,
            query=[("flowInstId", flow_inst_id)],
            flow_inst_id=flow_inst_id,
        )
        return _expect_dict(data, "get_flow_instance", flow_inst_id)

    def ensure_flow_instance_stopped(
        self, flow_inst_id: str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Cancel a flow instance, or confirm that it already finished; safe to repeat.

        Sends the cancel first (no read on the success path). When EnOS refuses, reads the instance:
        if it is final the outcome is ``already_final`` with that status; otherwise the refusal stands.

        :param flow_inst_id: the instance id.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :return: ``{"flow_inst_id", "outcome": "cancelled" | "already_final", "status"}``, where
            ``status`` is the status name read after a refusal, or None when EnOS accepted the cancel.
        :raises EnOSAPIError: the cancel's refusal, when the instance is still active or unreadable.
        """
        try:
            self.cancel_flow_instance(flow_inst_id, user_id=user_id, org_id=org_id)
        except EnOSAPIError as refusal:
            if isinstance(refusal, EnOSAuthenticationError) or refusal.code in _NOT_WORTH_A_READ:
                raise
            status = self._read_status_after_refusal(flow_inst_id, user_id, org_id, refusal)
            if status is None or not status.is_final:
                raise
            return {"flow_inst_id": flow_inst_id, "outcome": "already_final", "status": status.name}
        return {"flow_inst_id": flow_inst_id, "outcome": "cancelled", "status": None}

    def _read_status_after_refusal(
        self, flow_inst_id: str, user_id: str | None, org_id: str | None, refusal: EnOSAPIError
    ) -> EnOSFlowInstanceStatus | None:
        try:
            instance = self.get_flow_instance(flow_inst_id, user_id=user_id, org_id=org_id)
            return EnOSFlowInstanceStatus.parse(instance.get("status"), "status")
        except EnOSError as read_error:
            self.log.warning(
                "EnOS refused to cancel flow instance %s (code %s) and reading it failed too: %s",
                flow_inst_id,
                refusal.code,
                read_error,
            )
            return None

    def list_flow_instances(
        self,
        *,
        status: int
        | str
        | EnOSFlowInstanceStatus
        | Iterable[int | str | EnOSFlowInstanceStatus]
        | None = None,
        expression: str | None = None,
        page_size: int = 100,
        user_id: str | None = None,
        org_id: str | None = None,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        """Return every flow instance that matches, following all pages.

        :param status: one status or several, as codes, names or :class:`EnOSFlowInstanceStatus`.
        :param expression: fuzzy match on instance id or flow name.
        :param page_size: instances per page request (1 to 1000).
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        :param filters: more search fields: ``type`` (0 manual, 1 periodic, 2 temporary), ``owner``,
            ``from_trigger_time`` and ``to_trigger_time`` (ms or datetime), ``sorters``.
        """
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 1000:
            raise EnOSValidationError(f"page_size must be an integer from 1 to 1000, got {page_size!r}")
        search: dict[str, Any] = {}
        if status is not None:
            search["status"] = ",".join(str(int(s)) for s in _statuses(status))
        if expression is not None:
            search["expression"] = require_text(expression, "expression")
        for name, value in filters.items():
            if name not in _LIST_FILTERS:
                allowed = ", ".join(sorted(_LIST_FILTERS))
                raise EnOSValidationError(
                    f"list_flow_instances got an unknown filter {name!r}; expected {allowed}"
                )
            key = _LIST_FILTERS[name]
            search[key] = to_epoch_ms(value, name) if key.endswith("TriggerTime") else value
        sorters = search.pop("sorters", None)
        found: list[dict[str, Any]] = []
        page_no = 1
        while True:
            pagination: dict[str, Any] = {"pageNo": page_no, "pageSize": page_size}
            if sorters is not None:
                pagination["sorters"] = sorters
            data = _expect_dict(
                self._batch(
                    "list_flow_instances",
                    "POST",
                    "/flowInstances",
                    "search",
                    user_id=user_id,
                    org_id=org_id,
                    body={**search, "pagination": pagination},
                ),
                "list_flow_instances",
                None,
            )
            page = data.get("flowInsts") or []
            found.extend(page)
            if not page or len(page) < page_size or len(found) >= int(data.get("count") or 0):
                return found
            page_no += 1

    def trigger_flow(
        self,
        flow_id: int | str,
        *,
        trigger_time: int | datetime | None = None,
        user_id: str | None = None,
        org_id: str | None = None,
    ) -> str:
        """Start a workflow and return the new flow-instance id.

        :param flow_id: the workflow id (an integer, or its digits as a string).
        :param trigger_time: the logical trigger time, ms since the epoch or a datetime; default now.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        body = {
            "flowId": to_flow_id(flow_id),
            "triggerTime": int(time.time() * 1000) if trigger_time is None else to_epoch_ms(trigger_time),
        }
        data = self._batch(
            "trigger_flow", "POST", "/flows", "trigger", user_id=user_id, org_id=org_id, body=body
        )
        instance_id = data.get("flowInstanceId") if isinstance(data, dict) else None
        if not isinstance(instance_id, str) or not instance_id:
            raise EnOSAPIError(f"the reply has no flowInstanceId: {data!r}", operation="trigger_flow")
        return instance_id

    def get_flow(
        self, flow_id: int | str, *, user_id: str | None = None, org_id: str | None = None
    ) -> dict[str, Any]:
        """Return a workflow's definition, including its ``locked`` and ``isUserLocked`` flags.

        :param flow_id: the workflow id.
        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        data = self._batch(
            "get_flow",
            "GET",
            "/flows",
            "get",
            user_id=user_id,
            org_id=org_id,
            query=[("flowId", str(to_flow_id(flow_id)))],
        )
        return _expect_dict(data, "get_flow", None)

    def get_server_time(self, *, user_id: str | None = None, org_id: str | None = None) -> int:
        """Return EnOS's current time in milliseconds since the epoch (UTC).

        :param user_id: the EnOS user id; defaults to the connection's ``user_id`` extra.
        :param org_id: the OU id; defaults to the connection's ``org_id`` extra.
        """
        data = self._batch(
            "get_server_time", "GET", "/time", "getCurrentTime", user_id=user_id, org_id=org_id
        )
        try:
            return int(data)
        except (TypeError, ValueError):
            raise EnOSAPIError(
                f"the reply is not a time in ms: {data!r}", operation="get_server_time"
            ) from None

    def test_connection(self) -> tuple[bool, str]:
        """Check the credentials with one cheap authenticated read; never raises."""
        try:
            settings = self.settings
            if settings.user_id and settings.org_id:
                server_ms = self.get_server_time()
                return True, (
                    f"Connected to {settings.gateway_url}: signed call accepted, server time {server_ms} ms"
                )
            self._access_token()
            return True, (
                f"Connected to {settings.gateway_url}: credentials accepted; set the org_id and user_id "
                "extras to use Batch Processing"
            )
        except Exception as err:  # noqa: BLE001 - the UI and CLI expect a verdict, not a traceback
            return False, str(err)

    # ----------------------------------------------------------------- transport

    def _batch(
        self,
        operation: str,
        method: str,
        resource: str,
        action: str,
        *,
        user_id: str | None,
        org_id: str | None,
        query: list[tuple[str, str]] | None = None,
        body: dict[str, Any] | None = None,
        flow_inst_id: str | None = None,
    ) -> Any:
        user, org = self.settings.batch_identity(user_id, org_id)
        params = [("action", action), ("userId", user), ("orgId", org), *(query or [])]
        return self._call(operation, method, BATCH_PATH + resource, params, body, flow_inst_id)

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        body: dict[str, Any] | None,
        flow_inst_id: str | None,
    ) -> Any:
        token = self._access_token()
        try:
            return self._send(operation, method, path, query, body, token, flow_inst_id)
        except EnOSAPIError as err:
            if err.code != TOKEN_EXPIRED and err.http_status != 401:
                raise
            self.log.info("EnOS refused the access token for %s (expired); getting a new one", operation)
            token = self._access_token(stale=token)
            return self._send(operation, method, path, query, body, token, flow_inst_id)

    def _access_token(self, *, stale: str | None = None) -> str:
        settings = self.settings
        key = (settings.gateway_url, settings.access_key)
        with _TOKENS.lock:
            cached = _TOKENS.tokens.get(key)
            if cached and cached[0] != stale and _TOKENS.clock() < cached[1]:
                return cached[0]
            timestamp = _TOKENS.next_timestamp()
            body = {
                "appKey": settings.access_key,
                "timestamp": timestamp,
                "encryption": token_encryption(settings.access_key, timestamp, settings.secret_key),
            }
            data = self._send("get_access_token", "POST", TOKEN_PATH, [], body, None, None)
            token = data.get("accessToken") if isinstance(data, dict) else None
            if not isinstance(token, str) or not token:
                raise EnOSAuthenticationError(
                    "the token service returned no accessToken", operation="get_access_token"
                )
            mask_secret(token)
            expire = float(data.get("expire") or 0)
            _TOKENS.tokens[key] = (token, _TOKENS.clock() + expire - refresh_margin(expire))
            return token

    def _send(
        self,
        operation: str,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        body: dict[str, Any] | None,
        token: str | None,
        flow_inst_id: str | None,
    ) -> Any:
        settings = self.settings
        # Serialised once: these exact bytes are both signed and sent.
        payload = (
            None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        )
        url = settings.gateway_url + path + ("?" + urlencode(query, quote_via=quote) if query else "")
        headers = {"Content-Type": JSON_CONTENT_TYPE} if payload is not None else {}
        if token is not None:
            timestamp = int(time.time() * 1000)
            headers["apim-accesstoken"] = token
            headers["apim-timestamp"] = str(timestamp)
            headers["apim-signature"] = request_signature(
                token, query, payload, timestamp, settings.secret_key
            )
        try:
            reply = self.session.request(
                method, url, data=payload, headers=headers, timeout=settings.timeout, verify=settings.verify
            )
        except requests.exceptions.SSLError:
            raise EnOSConnectionError(
                f"EnOS {operation}: TLS verification of {settings.gateway_url} failed; "
                "set the connection's 'verify' extra to a CA bundle path if the gateway uses a private CA"
            ) from None
        except requests.Timeout:
            raise EnOSConnectionError(
                f"EnOS {operation}{_about(flow_inst_id)}: no reply from {settings.gateway_url} "
                f"within the connection's timeout of {settings.timeout:g} s"
            ) from None
        except requests.RequestException as err:
            raise EnOSConnectionError(
                f"EnOS {operation}{_about(flow_inst_id)}: could not reach {settings.gateway_url} "
                f"({type(err).__name__}: {err})"
            ) from None
        return parse_reply(
            http_status=reply.status_code, body=reply.content, operation=operation, flow_inst_id=flow_inst_id
        )


def to_flow_id(value: object) -> int:
    """Return a workflow id as the integer EnOS expects.

    :param value: an int, or a string of digits.
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EnOSValidationError(f"flow_id must be a non-negative integer (the workflow id), got {value!r}")
    return value


def to_epoch_ms(value: object, field: str = "trigger_time") -> int:
    """Return a time as milliseconds since the epoch.

    :param value: ms since the epoch (int) or a timezone-aware datetime.
    :param field: the parameter name to show in the error.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise EnOSValidationError(f"{field} must be timezone-aware, got naive {value.isoformat()}")
        return int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EnOSValidationError(f"{field} must be ms since the epoch or an aware datetime, got {value!r}")
    return value


def _statuses(value: object) -> list[EnOSFlowInstanceStatus]:
    items = [value] if isinstance(value, (str, int, EnOSFlowInstanceStatus)) else value
    if not isinstance(items, Iterable):
        raise EnOSValidationError(f"status must be a status or a list of statuses, got {value!r}")
    statuses = [EnOSFlowInstanceStatus.parse(item, "status") for item in items]
    if not statuses:
        raise EnOSValidationError("status must name at least one status, got an empty list")
    return list(dict.fromkeys(statuses))


def _expect_dict(data: Any, operation: str, flow_inst_id: str | None) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise EnOSAPIError(
            f"expected an object in data, got {data!r:.200}", operation=operation, flow_inst_id=flow_inst_id
        )
    return dict(data)


def _about(flow_inst_id: str | None) -> str:
    return f" of flow instance {flow_inst_id}" if flow_inst_id else ""
