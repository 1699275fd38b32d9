"""Property tests of the reply and token parsers: any bytes or JSON in, the data or a typed error out."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_enos_provider._protocol.envelope import enos_code, parse_reply
from airflow_enos_provider._protocol.tokens import MAX_TOKEN_LENGTH, MAX_TOKEN_LIFE, parse_token
from airflow_enos_provider.exceptions import _TEXT_LIMIT, EnOSAPIError

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
CODES = st.one_of(JSON, st.sampled_from([0, "0", 62102, "62102", 0.0, False, True, "0x0", " 0", "\u0660"]))
STATUSES = st.sampled_from([200, 201, 204, 301, 302, 307, 400, 401, 403, 404, 429, 500, 502, 503])


def _parse(status: int, body: bytes) -> object:
    try:
        return ("data", parse_reply(http_status=status, body=body, operation="get_flow_instance"))
    except EnOSAPIError as err:
        assert len(err.message) <= _TEXT_LIMIT + 60  # clipped, with the original length stated
        return ("error", err)


@settings(max_examples=300, deadline=None)
@given(STATUSES, st.binary(max_size=512))
def test_any_bytes_give_data_or_an_enos_api_error(status, body):
    _parse(status, body)


@settings(max_examples=300, deadline=None)
@given(STATUSES, CODES, JSON, st.sampled_from(["code", "status"]))
def test_success_is_exactly_a_2xx_with_code_zero(status, code, data, field):
    body = json.dumps({field: code, "msg": "m", "data": data}).encode()
    kind, value = _parse(status, body)
    success = 200 <= status < 300 and enos_code(code) == 0
    assert (kind == "data") == success
    if success:
        assert value == data
    # an integer or its digit string, nothing else, is a code
    if isinstance(code, bool) or not isinstance(code, (int, str)):
        assert enos_code(code) is None


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, st.dictionaries(st.sampled_from(["accessToken", "expire"]), JSON | st.text())))
def test_a_token_reply_gives_a_visible_ascii_token_or_an_error_that_never_quotes_it(data):
    try:
        token, expire = parse_token(data)
    except EnOSAPIError as err:
        token = data.get("accessToken") if isinstance(data, dict) else None
        if isinstance(token, str) and len(token) >= 4:
            assert token not in str(err)
        return
    assert 1 <= len(token) <= MAX_TOKEN_LENGTH and all(0x21 <= ord(c) <= 0x7E for c in token)
    assert expire >= 0


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=64), st.integers(min_value=0, max_value=10**6))
def test_a_well_formed_token_is_taken_as_it_is(token, expire):
    visible = "".join(c for c in token if 0x21 <= ord(c) <= 0x7E) or "t"
    kept = min(float(expire), MAX_TOKEN_LIFE)
    assert parse_token({"accessToken": visible, "expire": expire}) == (visible, kept)
