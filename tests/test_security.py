"""Bad input, secrets and transport security."""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_enos_provider._protocol import operations as ops
from airflow_enos_provider.exceptions import EnOSAPIError, EnOSConnectionError, EnOSValidationError
from airflow_enos_provider.hooks.enos import EnOSHook
from airflow_enos_provider.operators.flow_instance import CancelFlowInstanceOperator
from tests import enos_env as env

# ids users actually produce by mistake, plus anything hypothesis finds
NASTY_TEXT = st.one_of(
    st.sampled_from(
        ["a b", "a&b=c", "x#y", "100%", "%41", "描述", "a+b", "a/../b", "?action=cancel", "x" * 10_000]
    ),
    st.text(min_size=0, max_size=40),
)
ANY_ID = st.one_of(NASTY_TEXT, st.none(), st.integers(), st.floats(), st.lists(NASTY_TEXT, max_size=4))
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _sent_as_one_value(state, operation: str, value: str) -> None:
    calls = [r for r in state.requests if r.operation is not None and r.operation != "token.get"]
    assert [r.operation for r in calls] == [operation]
    (call,) = calls
    assert call.path.startswith("/batch-processing-service/v2.1/flowInstances")
    if operation == "flowInstances.get":
        assert call.query["flowInstId"] == value and call.query["action"] == "get"
    else:
        assert call.body == {"flowInstId": value} and call.query["action"] == "cancel"


def _raised_on_a_fresh_log(state, call: Callable[[], object]) -> Exception | None:
    """Run ``call`` on an empty request log and return what it raised; a refusal sent no request."""
    state.clear_requests()
    try:
        call()
    except Exception as err:  # noqa: BLE001 - each test judges what it got
        if isinstance(err, EnOSValidationError):
            assert [r for r in state.requests if r.operation != "token.get"] == []
        return err
    return None


@FUZZ
@given(value=ANY_ID)
def test_hook_ids_are_sent_intact_or_refused_before_any_request(enos_conn, value):
    state = enos_conn.state
    hook = EnOSHook(retries=0)
    for method, operation in (
        (hook.get_flow_instance, "flowInstances.get"),
        (hook.cancel_flow_instance, "flowInstances.cancel"),
    ):
        err = _raised_on_a_fresh_log(state, lambda: method(value))  # noqa: B023 - called at once
        if isinstance(err, EnOSValidationError):
            continue
        if err is not None:
            assert isinstance(err, EnOSAPIError) and err.code == 62102  # EnOS: no such instance
        _sent_as_one_value(state, operation, value)


@FUZZ
@given(value=ANY_ID)
def test_operator_ids_are_sent_intact_or_refused_before_any_request(enos_conn, value):
    state = enos_conn.state
    err = _raised_on_a_fresh_log(
        state, lambda: CancelFlowInstanceOperator(task_id="c", flow_inst_id=value).execute({})
    )
    if isinstance(err, EnOSValidationError):
        assert state.requests == []  # refused when the task is built: not even a token request
        return
    if err is not None:  # unknown ids fail after the cancel, naming the EnOS code
        assert "62102" in str(err)
    ids = [value] if isinstance(value, str) else list(dict.fromkeys(value))
    cancels = [r.body["flowInstId"] for r in state.requests if r.operation == "flowInstances.cancel"]
    assert sorted(cancels) == sorted(ids)  # one cancel per distinct id, each id intact
    assert {r.operation for r in state.requests} <= {"token.get", "flowInstances.cancel", "flowInstances.get"}


@FUZZ
@given(expression=NASTY_TEXT)
def test_list_expression_is_sent_intact(enos_conn, expression):
    state = enos_conn.state
    err = _raised_on_a_fresh_log(
        state, lambda: EnOSHook(retries=0).list_flow_instances(expression=expression, type=0)
    )
    if isinstance(err, EnOSValidationError):
        return
    assert err is None
    (search,) = [r for r in state.requests if r.operation == "flowInstances.search"]
    assert search.body["expression"] == expression


def test_query_parameters_cannot_be_smuggled(enos_conn):
    # An id is digits, a dash and digits: one carrying a query is refused before any request.
    state = enos_conn.state
    with pytest.raises(EnOSValidationError, match="flow_inst_id must be an EnOS instance id"):
        EnOSHook().get_flow_instance("1-2&action=cancel&flowInstId=" + env.RUNNING_ID)
    assert state.requests == []
    # and what the signed query carries is percent-encoded, whatever the text
    request = ops.prepare(
        ops.get_task_instance_log("1-2", 5), EnOSHook().settings, ("u&action=cancel", "o"), "t", 1.0
    )
    assert "action=cancel" not in request.url and request.url.count("action=") == 1
    assert state.instance_status(env.RUNNING_ID) == 2  # still RUNNING


def test_secret_and_token_are_registered_with_the_masker(hook, emulator):
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # Airflow < 3.1
        try:
            from airflow.sdk.execution_time.secrets_masker import redact
        except ImportError:  # Airflow 2.11
            from airflow.utils.log.secrets_masker import redact

    hook.get_server_time()
    (token,) = emulator.state.issued_tokens()
    text = redact(f"secret={env.SECRET_KEY} token={token}")
    assert env.SECRET_KEY not in text and token not in text and text.count("***") == 2


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1, made here (no network, no files from elsewhere)."""
    folder = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EnOS test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = {name: folder / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return {name: str(path) for name, path in paths.items()}


@pytest.fixture
def https_emulator(certificates):
    with env.start_emulator(tls=(certificates["cert"], certificates["key"])) as emulator:
        yield emulator


def test_tls_is_verified_by_default_and_not_retried(https_emulator, monkeypatch):
    assert https_emulator.url.startswith("https://")
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(https_emulator.url))
    hook = EnOSHook()
    assert hook.settings.verify is True
    with pytest.raises(EnOSConnectionError, match=r"TLS verification of https://127\.0\.0\.1") as caught:
        hook.get_server_time()
    message = str(caught.value)
    assert "[SSL: CERTIFICATE_VERIFY_FAILED]" in message and "_ssl.c" not in message
    assert message.count("(") == message.count(")"), message  # every parenthesis closes
    assert hook.retry_count.value == 0
    assert https_emulator.state.requests == []


def test_ca_bundle_path_is_trusted_sync_and_async(https_emulator, certificates, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(https_emulator.url, verify=certificates["ca"])
    )
    hook = EnOSHook()
    assert hook.get_server_time() == pytest.approx(https_emulator.state.now_ms(), abs=10_000)
    instance = env.run_async(EnOSHook().aget_flow_instance(env.RUNNING_ID))
    assert instance["instanceId"] == env.RUNNING_ID


def test_verify_false_works_and_warns_once(https_emulator, monkeypatch, capfd):
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(https_emulator.url, verify="false"))
    for _ in range(3):
        EnOSHook().get_server_time()
    out, err = capfd.readouterr()
    assert (out + err).count("TLS certificate verification is OFF") == 1


def test_plain_http_to_a_remote_gateway_warns(monkeypatch, capfd):
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json("http://enos-gateway.example"))
    EnOSHook().settings  # noqa: B018 - reading the settings is what warns; no request is sent
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json("http://127.0.0.1:1"))
    EnOSHook().settings  # noqa: B018
    out, err = capfd.readouterr()
    assert (out + err).count("is plain HTTP: tokens and credential-derived signatures travel in clear") == 1
    assert "http://enos-gateway.example is plain HTTP" in out + err


def test_clock_skew_is_named_in_the_error(monkeypatch):
    # The gateway's clock is 10 minutes behind ours, and it tolerates 60 s.
    with env.start_emulator(clock=lambda: time.time() - 600) as emulator:
        emulator.state.max_skew = 60
        monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", env.connection_json(emulator.url))
        with pytest.raises(
            EnOSAPIError, match=r"clock is 6\d\d s ahead of the gateway's .* Synchronise the clock"
        ):
            EnOSHook(retries=0).get_server_time()
