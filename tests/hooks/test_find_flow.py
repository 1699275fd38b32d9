"""Flows by name against the emulator: Search Flow (find_flow, afind_flow) and Get My Flow.

Where the pages say nothing (whether the fuzzy match ignores case, Search Flow's largest page,
flowId as text as the samples show or as a number as the table types it) every test runs under
each behaviour, and must be right under each.
"""

from __future__ import annotations

import pytest

from airflow_enos_provider.exceptions import EnOSAPIError, EnOSFlowNameError, EnOSValidationError
from tests import enos_env as env

# Flows whose names overlap: "orders_daily" is a fuzzy match for "orders" and for "ORDERS".
FLOWS = {5201: "orders", 5202: "orders_daily", 5203: "ORDERS", 5204: "twin", 5205: "twin"}


@pytest.fixture(
    params=[
        ("insensitive", None, "text"),
        ("sensitive", None, "number"),
        ("insensitive", 2, "number"),  # pages silently shortened to 2 flows
        ("sensitive", 1, "text"),
    ],
    ids=lambda p: f"{p[0]}-cap{p[1]}-{p[2]}",
)
def flows(request, enos_conn):
    state = enos_conn.state
    state.flow_match, state.flow_page_cap, state.flow_ids_as = request.param
    for flow_id, name in FLOWS.items():
        state.add_flow(flow_id, name=name, owner=env.USER_ID)
    return enos_conn


def test_the_exact_name_wins_among_fuzzy_matches(flows, hook):
    assert hook.find_flow("orders") == 5201
    assert hook.find_flow("ORDERS") == 5203
    assert hook.find_flow("orders_daily") == 5202
    assert {r.operation for r in flows.state.requests} == {"token.get", "flows.search"}
    assert all(r.violations == () for r in flows.state.requests)


def test_the_search_sends_the_name_and_reads_every_page(flows, hook):
    hook.find_flow("orders")
    searches = [r for r in flows.state.requests if r.operation == "flows.search"]
    assert {r.body["expression"] for r in searches} == {"orders"}
    assert [r.body["pagination"]["pageNo"] for r in searches] == list(range(1, len(searches) + 1))
    # The last page read is empty or brings nothing new: a short page is not trusted to be the last.
    assert len(searches) >= 2


def test_no_exact_match_fails_listing_the_fuzzy_candidates(flows, hook):
    with pytest.raises(EnOSFlowNameError) as caught:
        hook.find_flow("order")
    err = caught.value
    assert err.exact == []
    assert {5201, 5202} <= {flow_id for flow_id, _ in err.candidates}
    assert "no EnOS flow is named exactly 'order'" in str(err) and "5202 'orders_daily'" in str(err)


def test_nothing_found_at_all_says_so(flows, hook):
    with pytest.raises(EnOSFlowNameError, match="found no flow at all"):
        hook.find_flow("no_such_flow")


def test_several_exact_matches_fail_naming_each(flows, hook):
    with pytest.raises(EnOSFlowNameError) as caught:
        hook.find_flow("twin")
    assert caught.value.exact == [5204, 5205]
    assert "2 EnOS flows are named exactly 'twin' (ids 5204, 5205)" in str(caught.value)


def test_the_async_twin_resolves_the_same(flows, hook):
    assert env.run_async(hook.afind_flow("orders")) == 5201
    with pytest.raises(EnOSFlowNameError):
        env.run_async(hook.afind_flow("twin"))


@pytest.mark.parametrize("name", ["", None, 5201, " orders"])
def test_a_bad_name_is_refused_before_any_request(enos_conn, hook, name):
    with pytest.raises(EnOSValidationError, match="flow_name"):
        hook.find_flow(name)
    with pytest.raises(EnOSValidationError, match="flow_name"):
        env.run_async(hook.afind_flow(name))
    assert enos_conn.state.requests == []


@pytest.mark.parametrize(
    "data", [{"flowId": 1}, [{"flowName": "x"}], [{"flowId": "1a", "flowName": "x"}], [{"flowId": 1}], ["x"]]
)
def test_a_malformed_flow_list_is_a_typed_error(data):
    from airflow_enos_provider._protocol import operations as ops
    from airflow_enos_provider._protocol.catalog import flows_of

    with pytest.raises(EnOSAPIError, match="search_flows"):
        flows_of(data, ops.search_flows("x", 1, 100))


def test_get_my_flows_returns_the_users_flows_with_int_ids(flows, hook):
    mine = hook.get_my_flows("orders")
    assert {f["flowId"] for f in mine} >= {5201, 5202}
    assert all(set(f) == {"flowId", "editable", "flowName", "cycle"} for f in mine)
    assert all(isinstance(f["flowId"], int) for f in mine)
    everything = hook.get_my_flows()
    assert {f["flowId"] for f in everything} >= set(FLOWS)
    queries = [r.query for r in flows.state.requests if r.operation == "flows.getMyFlow"]
    assert queries[0]["expression"] == "orders" and "expression" not in queries[1]


def test_get_my_flows_shows_only_the_users_own(enos_conn, hook):
    enos_conn.state.add_flow(5210, name="theirs", owner=env.OTHER_USER_ID)
    assert 5210 not in {f["flowId"] for f in hook.get_my_flows()}
    assert hook.find_flow("theirs") == 5210  # Search Flow covers every flow of the OU
