from __future__ import annotations

import hashlib

import pytest

from airflow_enos_provider._protocol.signing import params_data, request_signature, token_encryption

VENDOR_BODY = '{\n  "count": 20,\n  "page": 1,\n  "desc": "描述"\n}'.encode()


def test_vendor_worked_example():
    signature = request_signature(
        "xxxxaaaxxxx", "k3=v3&k1=v1&k2=v2", VENDOR_BODY, 1572574909697, "xxxappSecretxxx"
    )
    assert signature == "59828328f6c1f9771015dc74e4929ae30f518a35a3d2353972c2ea46556fc981"


def test_token_vector():
    encryption = token_encryption(
        "7b51b354-f200-45a9-a349-585d97730c5a", 1700000000000, "65417473-2da3-40cc-b235-513b9216bab1"
    )
    assert encryption == "b40a16c51ba0b8cc8219e256cd25eb1d2aa43c87f979f7142a14284912a45c05"


@pytest.mark.parametrize(
    "query",
    [
        "k3=v3&k1=v1&k2=v2",
        "k1=v1&k2=v2&k3=v3",
        [("k2", "v2"), ("k3", "v3"), ("k1", "v1")],
        {"k3": "v3", "k1": "v1", "k2": "v2"},
    ],
)
def test_parameter_order_does_not_matter(query):
    assert params_data(query) == b"k1v1k2v2k3v3"


def test_percent_encoded_non_ascii_value_is_signed_decoded():
    assert params_data("name=%E6%8F%8F%E8%BF%B0&a=1") == "a1name描述".encode()
    # the same value given decoded signs the same bytes
    assert params_data([("name", "描述"), ("a", "1")]) == params_data("name=%E6%8F%8F%E8%BF%B0&a=1")


def test_plus_in_query_string_is_a_space_and_encoded_plus_is_a_plus():
    assert params_data("q=a+b") == b"qa b"
    assert params_data("q=a%2Bb") == b"qa+b"


def test_empty_value_contributes_only_its_name():
    assert params_data("b=&a=1") == b"a1b"
    assert params_data("b&a=1") == b"a1b"
    assert params_data([("b", ""), ("a", "1")]) == b"a1b"


def test_repeated_name_counts_once_with_first_value():
    assert params_data("a=1&a=2&b=3") == b"a1b3"


def test_body_with_non_ascii_text_is_hashed_as_utf8_bytes():
    body = '{"desc":"描述"}'.encode()
    expected = hashlib.sha256(b"tok" + b"action" + b"get" + body + b"42" + b"sec").hexdigest()
    assert request_signature("tok", "action=get", body, 42, "sec") == expected


def test_signature_changes_with_every_input():
    base = request_signature("tok", "a=1", b"{}", 1, "sec")
    assert (
        len(
            {
                base,
                request_signature("tok2", "a=1", b"{}", 1, "sec"),
                request_signature("tok", "a=2", b"{}", 1, "sec"),
                request_signature("tok", "a=1", b"{ }", 1, "sec"),
                request_signature("tok", "a=1", b"{}", 2, "sec"),
                request_signature("tok", "a=1", b"{}", 1, "sec2"),
            }
        )
        == 6
    )
    assert base == base.lower() and len(base) == 64
