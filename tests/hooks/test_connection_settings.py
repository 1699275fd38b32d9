from __future__ import annotations

import json

import pytest

try:
    from airflow.sdk import Connection
except ImportError:  # Airflow 2.11: no task SDK
    from airflow.models.connection import Connection

from airflow_enos_provider._connection import EnOSConnectionSettings
from airflow_enos_provider.exceptions import EnOSValidationError


def settings(**fields):
    base = {
        "conn_id": "enos_x",
        "conn_type": "enos",
        "host": "https://apim-ppe1.envisioniot.com",
        "login": "ak",
        "password": "sk-secret-value",
        "extra": json.dumps({"org_id": "o1", "user_id": "u1"}),
    }
    base.update(fields)
    return EnOSConnectionSettings.from_connection(Connection(**base))


def test_defaults():
    s = settings()
    assert (s.gateway_url, s.access_key, s.org_id, s.user_id, s.verify, s.timeout) == (
        "https://apim-ppe1.envisioniot.com",
        "ak",
        "o1",
        "u1",
        True,
        30.0,
    )
    assert "sk-secret-value" not in repr(s)


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("apim-ppe1.envisioniot.com", None, "https://apim-ppe1.envisioniot.com"),
        ("https://apim-ppe1.envisioniot.com/", None, "https://apim-ppe1.envisioniot.com"),
        ("http://127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("http://127.0.0.1:9000", 9000, "http://127.0.0.1:9000"),
    ],
)
def test_gateway_url_forms(host, port, url):
    assert settings(host=host, port=port).gateway_url == url


def test_port_that_contradicts_the_url_is_refused():
    with pytest.raises(EnOSValidationError, match=r"port 8080 differs from the port in the gateway URL"):
        settings(host="http://127.0.0.1:9000", port=8080)


def _connection_from_uri(uri: str, conn_id: str):
    if hasattr(Connection, "from_uri"):
        return Connection.from_uri(uri, conn_id=conn_id)
    # Airflow 3.0: the task SDK's Connection cannot parse a URI yet; the core model's parser is the one
    # that reads AIRFLOW_CONN_* URIs there.
    from airflow.models.connection import Connection as CoreConnection

    return CoreConnection(conn_id=conn_id, uri=uri)


def test_uri_form_parses():
    conn = _connection_from_uri(
        "enos://ak:sk-uri-4b9e@apim-ppe1.envisioniot.com?org_id=o1&user_id=u1&timeout=5", conn_id="u"
    )
    s = EnOSConnectionSettings.from_connection(conn)
    assert (s.gateway_url, s.org_id, s.user_id, s.timeout) == (
        "https://apim-ppe1.envisioniot.com",
        "o1",
        "u1",
        5.0,
    )


def test_prefixed_extras_from_older_forms_are_read_and_plain_names_win():
    s = settings(
        extra=json.dumps(
            {
                "extra__enos__org_id": "o-old",
                "extra__enos__user_id": "u-old",
                "user_id": "u-new",
                "extra__enos__verify": "false",
            }
        )
    )
    assert (s.org_id, s.user_id, s.verify) == ("o-old", "u-new", False)


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), (False, False), ("/etc/ca.pem", "/etc/ca.pem")]
)
def test_verify_values(value, expected):
    assert settings(extra=json.dumps({"verify": value})).verify == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"host": None}, r"host \(the EnOS API gateway URL"),
        ({"host": "ftp://x"}, r"host must be the gateway URL"),
        ({"login": None}, r"login \(the application's access key\) is empty"),
        ({"password": None}, r"password \(the application's secret key\) is empty"),
        ({"extra": "{not json"}, r"extra must be a JSON object"),
        ({"extra": json.dumps({"timeout": "soon"})}, r"extra 'timeout' must be a positive number"),
        ({"extra": json.dumps({"timeout": 0})}, r"extra 'timeout' must be a positive number"),
        ({"extra": json.dumps({"verify": 3})}, r"extra 'verify' must be true, false or a CA bundle path"),
        ({"extra": json.dumps({"org_id": " o1"})}, r"extra 'org_id' must not start or end with whitespace"),
    ],
)
def test_bad_connections_name_the_field(fields, message):
    with pytest.raises(EnOSValidationError, match=message) as caught:
        settings(**fields)
    assert "enos_x" in str(caught.value) and "sk-secret-value" not in str(caught.value)


def test_batch_identity_prefers_arguments_and_names_what_is_missing():
    s = settings(extra=json.dumps({"org_id": "o1"}))
    assert s.batch_identity("u-arg", None) == ("u-arg", "o1")
    with pytest.raises(
        EnOSValidationError, match=r"user_id is required .* 'user_id' extra on connection 'enos_x'"
    ):
        s.batch_identity(None, None)
    with pytest.raises(EnOSValidationError, match="org_id is required"):
        settings(extra="{}").batch_identity("u", None)


def test_console_url_is_optional_and_kept_when_its_placeholders_are_known():
    assert settings().console_url is None
    template = "https://console.example/batch/{flow_id}/instances/{flow_inst_id}?org={org_id}"
    s = settings(extra=json.dumps({"org_id": "o1", "console_url": template}))
    assert s.console_url == template


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("https://c/{flowInstId}", r"extra 'console_url': unknown placeholder \{flowInstId\}"),
        ("https://c/{flow_id:>8}", r"extra 'console_url': unknown placeholder \{flow_id:>8\}"),
        ("https://c/{}", r"extra 'console_url': unknown placeholder \{\}"),
        ("https://c/{flow_inst_id", r"extra 'console_url': .*write a literal brace as \{\{ or \}\}"),
        ("console.example/{flow_inst_id}", r"extra 'console_url' must be an http\(s\) URL template"),
    ],
)
def test_a_bad_console_url_names_the_field_and_the_placeholders_allowed(template, message):
    with pytest.raises(EnOSValidationError, match=message) as caught:
        settings(extra=json.dumps({"console_url": template}))
    assert "connection 'enos_x'" in str(caught.value)
    assert "{flow_inst_id}, {flow_id}, {org_id}" in str(caught.value) or "brace" in str(caught.value)


def test_console_url_values_are_quoted_and_a_missing_one_is_named():
    from airflow_enos_provider._connection import console_url

    url = console_url("https://c/{flow_inst_id}?org={org_id}&f={flow_id}", "2438-2019 08", 2438, "o/1")
    assert url == "https://c/2438-2019%2008?org=o%2F1&f=2438"
    with pytest.raises(EnOSValidationError, match=r"console_url needs \{org_id\}"):
        console_url("https://c/{flow_inst_id}?org={org_id}", "2438-1", None, None)
