"""Errors raised by the EnOS provider; all are Airflow exceptions."""

from __future__ import annotations

from airflow_enos_provider._compat import AirflowException, AirflowFailException

__all__ = [
    "EnOSAPIError",
    "EnOSAuthenticationError",
    "EnOSConnectionError",
    "EnOSError",
    "EnOSFlowInstanceError",
    "EnOSFlowNameError",
    "EnOSValidationError",
]

#: The most characters of outside text (a reply's message, a library's error) an error or log quotes.
_TEXT_LIMIT = 2048


def _clip(text: str, limit: int = _TEXT_LIMIT) -> str:
    """Return ``text``, or its first ``limit`` characters and how long it was.

    :param text: text that came from outside (the wire, a library).
    :param limit: the most characters kept.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [clipped: {len(text)} characters in all]"


class EnOSError(AirflowException):
    """Base class of every error this provider raises."""


class EnOSValidationError(AirflowFailException, ValueError):
    """Bad input or connection settings, found before any request is sent (retrying cannot help)."""


class EnOSConnectionError(EnOSError):
    """The gateway could not be reached or did not answer in time.

    :param message: what happened.
    :param maybe_sent: whether the request may have reached EnOS (a read timeout or a reset after
        sending), which makes repeating a call that is not idempotent unsafe.
    :param tls: the TLS certificate check failed (repeating cannot help).
    """

    def __init__(self, message: str, *, maybe_sent: bool = True, tls: bool = False) -> None:
        self.maybe_sent = maybe_sent
        self.tls = tls
        super().__init__(_clip(message))


class EnOSAPIError(EnOSError):
    """EnOS refused a call, or answered with something that is not a success envelope.

    :param message: what EnOS said (its ``msg``/``message``, or an excerpt of a non-JSON reply).
    :param operation: the call that failed, such as ``cancel_flow_instance``.
    :param code: the EnOS code (``code`` or ``status`` of the envelope); None when there was none.
    :param http_status: the HTTP status of the reply.
    :param request_id: the ``requestId`` EnOS gave, if any.
    :param flow_inst_id: the flow instance the call was about, if any.
    :param hint: what the user can do about it.
    :param retry_after: seconds the gateway asked to wait (``Retry-After``), if it did.
    :param server_time: the gateway's clock from the reply's ``Date`` header (Unix seconds), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        code: int | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        flow_inst_id: str | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
        server_time: float | None = None,
    ) -> None:
        self.message = _clip(message)
        self.retry_after = retry_after
        self.server_time = server_time
        self.operation = operation
        self.code = code
        self.http_status = http_status
        self.request_id = None if request_id is None else _clip(request_id, 200)
        self.flow_inst_id = flow_inst_id
        self.hint = hint
        super().__init__(self._describe())

    def _describe(self) -> str:
        subject = f" of flow instance {self.flow_inst_id}" if self.flow_inst_id else ""
        what = f"EnOS code {self.code}" if self.code is not None else "no EnOS code"
        details = [f"HTTP {self.http_status}"] if self.http_status is not None else []
        if self.request_id:
            details.append(f"requestId {self.request_id}")
        text = f"EnOS {self.operation}{subject} failed: {what}: {self.message}"
        if details:
            text += f" ({', '.join(details)})"
        if self.hint:
            text += f". {self.hint}"
        return text


class EnOSAuthenticationError(EnOSAPIError):
    """The gateway refused the connection's credentials (access key, secret key or token)."""


class EnOSFlowInstanceError(EnOSError):
    """A flow instance ended in a status the task did not accept, or did not end in time.

    :param message: what happened, per instance.
    :param statuses: the last status read per instance id.
    """

    def __init__(self, message: str, statuses: dict[str, str]) -> None:
        self.statuses = statuses
        super().__init__(message)


class EnOSFlowNameError(EnOSError):
    """A flow name that names no flow, or several: Search Flow found not exactly one exact match.

    :param name: the name looked up.
    :param exact: the ids of the flows named exactly ``name`` (none, or several).
    :param candidates: every flow the search found, ``(flow id, flow name)``, fuzzy matches included.
    """

    #: The most candidates the message lists.
    LISTED = 20

    def __init__(self, name: str, exact: list[int], candidates: list[tuple[int, str]]) -> None:
        self.name = name
        self.exact = exact
        self.candidates = candidates
        shown = ", ".join(f"{flow_id} {flow_name!r}" for flow_id, flow_name in candidates[: self.LISTED])
        more = f" and {len(candidates) - self.LISTED} more" if len(candidates) > self.LISTED else ""
        if exact:
            what = f"{len(exact)} EnOS flows are named exactly {name!r} (ids {', '.join(map(str, exact))})"
            todo = "give flow_id instead, or rename all but one of them"
        else:
            what = f"no EnOS flow is named exactly {name!r} (the match is case-sensitive)"
            todo = "check the name and the connection's OU"
        listed = f"Search Flow found: {shown}{more}" if candidates else "Search Flow found no flow at all"
        super().__init__(_clip(f"{what}; {listed}. {todo.capitalize()}"))
