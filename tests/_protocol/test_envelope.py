from __future__ import annotations

import json

import pytest

from airflow_enos_provider._protocol.envelope import parse_reply
from airflow_enos_provider.exceptions import EnOSAPIError, EnOSAuthenticationError


def reply(payload, status=200):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_reply(http_status=status, body=body, operation="cancel_flow_instance", flow_inst_id="2438-1")


def test_v21_success_returns_data():
    assert reply({"code": 0, "msg": "OK", "data": {"x": 1}, "requestId": "r1"}) == {"x": 1}


def test_v20_and_token_service_success_uses_status():
    assert reply({"status": 0, "msg": " Success", "data": "tok"}) == "tok"


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (62101, "check user_id and org_id"),
        (62103, "does not own this flow instance"),
        (62105, "locked"),
        (62102, "unknown flow-instance id"),
    ],
)
def test_business_errors_carry_code_message_request_id_and_hint(code, hint):
    with pytest.raises(EnOSAPIError) as caught:
        reply({"code": code, "msg": "EnOS says no", "data": None, "requestId": "req-9"})
    err = caught.value
    assert (err.code, err.message, err.request_id, err.http_status) == (code, "EnOS says no", "req-9", 200)
    assert err.operation == "cancel_flow_instance" and err.flow_inst_id == "2438-1"
    text = str(err)
    assert f"EnOS code {code}" in text and "EnOS says no" in text and "req-9" in text and hint in text
    assert "2438-1" in text


def test_business_error_with_non_2xx_status():
    with pytest.raises(EnOSAPIError) as caught:
        reply({"code": 62109, "msg": "internal"}, status=500)
    assert caught.value.code == 62109 and caught.value.http_status == 500


def test_html_error_page_gives_status_and_short_excerpt():
    page = b"<html><head><title>502 Bad Gateway</title></head><body>" + b"x" * 5000 + b"</body></html>"
    with pytest.raises(EnOSAPIError) as caught:
        reply(page, status=502)
    err = caught.value
    assert err.code is None and err.http_status == 502
    assert "502 Bad Gateway" in str(err) and "<title>" not in str(err)
    assert len(str(err)) < 500


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"code": 0, "msg": "OK", "da', b"\xff\xfe"])
def test_non_json_or_truncated_replies_raise_api_error_not_decode_error(body):
    with pytest.raises(EnOSAPIError) as caught:
        reply(body)
    assert caught.value.code is None


def test_gateway_message_body():
    with pytest.raises(EnOSAuthenticationError) as caught:
        reply({"message": "Invalid credentials"}, status=401)
    assert "Invalid credentials" in str(caught.value) and "HTTP 401" in str(caught.value)


def test_code_zero_with_http_error_is_not_success():
    with pytest.raises(EnOSAPIError):
        reply({"code": 0, "msg": "OK", "data": ""}, status=503)


def test_unknown_code_is_reported():
    with pytest.raises(EnOSAPIError, match="EnOS code 99999"):
        reply({"code": 99999, "msg": "new"})
