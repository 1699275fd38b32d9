"""Search Flow over HTTP: search_flow.md makes `pagination` and its `sorters` optional."""

from __future__ import annotations

import pytest

from tests.emulator.api.client import Client


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"expression": ""},
        {"pagination": {"pageNo": 1, "pageSize": 100}},
        {"pagination": {"pageNo": 1, "pageSize": 100, "sorters": []}},
        {"pagination": {"pageNo": 1, "pageSize": 100, "sorters": [{"field": "createTime"}]}},
    ],
)
def test_a_search_without_sorters_lists_the_flows_in_creation_order(client: Client, body: dict) -> None:
    ascending = {"pageNo": 1, "pageSize": 100, "sorters": [{"field": "createTime", "order": "ASC"}]}
    expected = client.ok("POST", "flows", "search", {"pagination": ascending})
    assert len(expected) > 1
    found = client.ok("POST", "flows", "search", body)
    assert found == expected[: len(found)] and found  # a search with no pagination gets the first page
