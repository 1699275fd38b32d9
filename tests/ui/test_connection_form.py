"""The EnOS connection form and the connection Test feature, in a real browser against a real api-server.

A user logs in, adds an ``enos`` connection through Admin > Connections, checks the form Airflow builds
from ``get_provider_info()``, saves it, presses Test (right secret, wrong secret, right again), and the
saved connection then drives ``EnOSHook`` against the emulator. ``airflow connections test`` is checked
on the same AIRFLOW_HOME.

Airflow 3.3.2's connection form has no Test button: Test is the icon button on the connection's row in
the list, and it tests the saved connection.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from airflow_enos_provider.get_provider_info import get_provider_info
from tests import enos_env
from tests.airflow_cli import airflow_cli
from tests.e2e.airflow_stack import wait_for
from tests.ui.conftest import ADMIN, UI_BUILD, UIAirflow

pytestmark = pytest.mark.timeout(420)  # the module's first test also starts Airflow

CONN_ID = "enos_ui"
WRONG_SECRET = "sk-wrong-0b7e4c1d9a2f"
enos_env.SECRETS_SEEN.add(WRONG_SECRET)  # the suite's leak check looks for it too
TOAST = "[data-scope=toast][data-part=root]"


def _enos_form() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Return the ``enos`` connection type's conn-fields and ui-field-behaviour as Airflow reads them."""
    (conn_type,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "enos"]
    return conn_type["conn-fields"], conn_type["ui-field-behaviour"]


def _screenshot(page: Page, name: str) -> None:
    """Save the viewport under build/ui, the accordion and toast transitions run to their end."""
    page.screenshot(path=str(UI_BUILD / name), animations="disabled")


def _log_in(page: Page, ui: UIAirflow) -> None:
    page.goto(ui.url)
    expect(page).to_have_url(f"{ui.url}/auth/login?next=%2F")  # the simple auth manager's own login page
    page.get_by_label("Username").fill(ADMIN)
    page.get_by_label("Password").fill(ui.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Admin")).to_be_visible()


def _open_connections(page: Page) -> None:
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    expect(page.get_by_role("button", name="Add Connection")).to_be_visible()


def _row(page: Page) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=CONN_ID, exact=True))


def _press_test(page: Page) -> tuple[str, str, str]:
    """Press the row's Test button and return the new toast's (type, title, description)."""

    def toast_ids() -> list[str]:
        return list(page.locator(TOAST).evaluate_all("toasts => toasts.map(t => t.id)"))

    before = set(toast_ids())
    _row(page).get_by_role("button", name="Test Connection").click()
    # Earlier toasts may still be open: wait for the one this press made.
    new_id = wait_for(
        "the Test Connection toast", lambda: [i for i in toast_ids() if i not in before], 60, 0.2
    )[0]
    toast = page.locator(f'[id="{new_id}"]')
    return (
        str(toast.get_attribute("data-type")),
        toast.locator("[data-part=title]").inner_text(),
        toast.locator("[data-part=description]").inner_text(),
    )


def _edit_secret(page: Page, secret: str) -> None:
    """Open the row's Edit dialog, type a new secret key and save."""
    _row(page).get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    field = dialog.get_by_label("Secret key", exact=True)
    # The browser never gets the stored secret back, only Airflow's mask.
    expect(field).to_have_value("***")
    field.fill(secret)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)


def _portless_test_is_refused() -> bool:
    """Whether this Airflow refuses the list's Test for a connection with no port.

    Airflow 3.3.1-3.3.2: the Test button posts ``port: Number(connection.port)``, i.e. 0 for a stored
    NULL, and ``POST /api/v2/connections/test`` takes 0 for another endpoint than NULL and answers 400
    "The host or port to test differs from the stored connection" (fixed upstream by apache/airflow#73298).
    """
    from airflow.api_fastapi.core_api.routes.public import connections

    same_endpoint = getattr(connections, "_same_endpoint", None)
    return same_endpoint is not None and not same_endpoint(0, None)


def _edit_port(page: Page, port: int) -> None:
    """Open the row's Edit dialog, type the gateway port and save: the user's way past the port-less bug."""
    _row(page).get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Gateway port", exact=True).fill(str(port))
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)


def _airflow_cli(
    ui: UIAirflow, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``airflow <args>`` with the api-server's AIRFLOW_HOME and settings, output captured (bounded)."""
    return airflow_cli(*args, env={**ui.stack.env, **(env or {})}, cwd=ui.stack.home)


def test_connection_form_in_browser(
    ui_airflow: UIAirflow, browser_context: BrowserContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ui, emulator = ui_airflow, ui_airflow.emulator
    conn_fields, behaviour = _enos_form()
    UI_BUILD.mkdir(parents=True, exist_ok=True)
    (UI_BUILD / "failure.png").unlink(missing_ok=True)  # only this run's failure, if any
    page = browser_context.new_page()
    try:
        _log_in(page, ui)
        _open_connections(page)
        page.get_by_role("button", name="Add Connection").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_role("heading", name="Add Connection")).to_be_visible()
        dialog.get_by_label("Connection ID").fill(CONN_ID)
        dialog.get_by_role("combobox").click()
        page.get_by_role("option", name="EnOS", exact=True).click()

        # Standard fields: relabelled, with their placeholders; the secret key is a password input.
        standard = dialog.get_by_role("region", name="Standard Fields")
        expect(standard).to_be_visible()
        for field, label in behaviour["relabeling"].items():
            element = standard.get_by_label(label, exact=True)
            expect(element).to_have_attribute("name", field)
            expect(element).to_have_attribute("placeholder", behaviour["placeholders"][field])
            kind = {"password": "password", "port": "number"}.get(field, "text")
            expect(element).to_have_attribute("type", kind)
        shown = set(standard.locator("input, textarea").evaluate_all("es => es.map(e => e.name)"))
        assert shown == {"description", *behaviour["relabeling"]}, shown
        hidden = set(behaviour["hidden-fields"])
        # The UI names the schema input url_schema.
        assert not (shown & {*hidden, "url_schema"}), f"hidden fields shown: {shown & hidden}"
        for default_label in ("Schema", "Port", "Host", "Login", "Password"):  # Airflow's own labels
            expect(standard.get_by_text(default_label, exact=True)).to_have_count(0)
        standard.get_by_label(behaviour["relabeling"]["host"], exact=True).fill(emulator.url)
        standard.get_by_label(behaviour["relabeling"]["login"], exact=True).fill(enos_env.ACCESS_KEY)
        standard.get_by_label(behaviour["relabeling"]["password"], exact=True).fill(enos_env.SECRET_KEY)

        # Extra fields: every conn-field with its label, description and default.
        dialog.get_by_role("button", name="Extra Fields", exact=True).click()
        # Airflow's FlexibleForm section has no accessible name: it is the region holding element_* inputs.
        extras = dialog.get_by_role("region").filter(has=page.locator("input[name^='element_']"))
        expect(extras).to_be_visible()
        names = set(extras.locator("input").evaluate_all("es => es.map(e => e.name)"))
        assert names == {f"element_{name}" for name in conn_fields}, names
        for name, spec in conn_fields.items():
            element = extras.locator(f'input[name="element_{name}"]')
            # 3.3.2 labels string fields with a `for` that misses their input: find the label by field.
            field_root = extras.locator("[data-scope=field][data-part=root]").filter(
                has=page.locator(f'input[name="element_{name}"]')
            )
            expect(field_root.locator("label")).to_have_text(spec["label"])
            expect(element).to_have_accessible_description(spec["description"])
            default = spec["schema"].get("default")
            expect(element).to_have_value("" if default is None else str(default))
        extras.locator('input[name="element_org_id"]').fill(enos_env.ORG_ID)
        extras.locator('input[name="element_user_id"]').fill(enos_env.USER_ID)
        _screenshot(page, "connection-form-extras.png")
        dialog.get_by_role("button", name="Standard Fields", exact=True).click()
        expect(extras).to_be_hidden()
        expect(standard).to_be_visible()
        _screenshot(page, "connection-form.png")

        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_have_count(0)
        expect(_row(page)).to_contain_text(emulator.url)

        # Test, as saved by the form.
        requests_before = len(emulator.state.requests)
        kind, title, message = _press_test(page)
        if _portless_test_is_refused():
            assert (kind, title, message) == ("error", "Test Connection Failed", "Bad Request")
            assert len(emulator.state.requests) == requests_before, "the hook ran despite the 400"
            refused = "path=/api/v2/connections/test query= status_code=400"
            assert refused in ui.stack.components["api-server"].read_log()
            port = urlsplit(emulator.url).port
            assert port is not None
            _edit_port(page, port)
            expect(_row(page)).to_contain_text(str(port))
        else:
            assert (kind, title) == ("success", "Test Connection Successful"), message

        # Test with the right secret: the hook's signed call went through.
        times_before = emulator.state.count("time.getCurrentTime")
        kind, title, message = _press_test(page)
        assert (kind, title) == ("success", "Test Connection Successful"), message
        assert message.startswith(f"Connected to {emulator.url}: signed call accepted"), message
        assert emulator.state.count("time.getCurrentTime") > times_before
        assert emulator.state.requests[-1].code == 0

        # Test with a wrong secret: a clear failure that names the signature and keeps secrets out.
        _edit_secret(page, WRONG_SECRET)
        kind, title, message = _press_test(page)
        assert (kind, title) == ("error", "Test Connection Failed"), message
        assert "signature is not valid" in message, message
        assert "secret key" in message, message
        enos_env.assert_no_secret(message, "the Test Connection message", enos_env.secrets_with(emulator))
        enos_env.assert_no_secret(page.content(), "the connections page", enos_env.secrets_with(emulator))
        refused_token = [r for r in emulator.state.requests if r.operation == "token.get"][-1]
        assert refused_token.code == 1003  # EnOS: "Encryption is not valid"
        _screenshot(page, "connection-test-failed.png")

        # Restore the secret: Test succeeds again, and the saved connection drives the hook.
        _edit_secret(page, enos_env.SECRET_KEY)
        kind, title, message = _press_test(page)
        assert (kind, title) == ("success", "Test Connection Successful"), message
        enos_env.assert_no_secret(page.content(), "the connections page", enos_env.secrets_with(emulator))
    except BaseException:
        _screenshot(page, "failure.png")
        raise
    finally:
        page.close()

    got = _airflow_cli(ui, "connections", "get", CONN_ID, "-o", "json")
    # stdout holds the secret key, stderr must not
    enos_env.assert_no_secret(got.stderr, "`airflow connections get` errors", enos_env.secrets_with(emulator))
    assert got.returncode == 0, got.stderr[-2000:]
    (saved,) = json.loads(got.stdout)
    restored = saved["password"] == enos_env.SECRET_KEY
    assert restored, "the saved connection does not hold the restored secret key"
    assert (saved["conn_type"], saved["login"]) == ("enos", enos_env.ACCESS_KEY)
    assert saved["extra_dejson"]["org_id"] == enos_env.ORG_ID
    assert saved["extra_dejson"]["user_id"] == enos_env.USER_ID
    fields = ("conn_type", "host", "port", "login", "password")
    as_saved = {**{k: saved[k] for k in fields}, "extra": saved["extra_dejson"]}
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_UI_SAVED", json.dumps(as_saved))

    from airflow_enos_provider.hooks.enos import EnOSHook

    hook = EnOSHook(enos_conn_id="enos_ui_saved")
    try:
        assert hook.settings.gateway_url == emulator.url
        instance = hook.get_flow_instance(enos_env.RUNNING_ID)
    finally:
        hook.close()
    assert instance["status"] == 2  # RUNNING
    last = emulator.state.requests[-1]
    assert (last.operation, last.code) == ("flowInstances.get", 0)
    assert enos_env.RUNNING_ID in last.query.values()
    assert (last.query.get("userId"), last.query.get("orgId")) == (enos_env.USER_ID, enos_env.ORG_ID)


def test_cli_connections_test(ui_airflow: UIAirflow) -> None:
    ui, emulator = ui_airflow, ui_airflow.emulator
    env = {
        "AIRFLOW_CONN_ENOS_CLI_OK": enos_env.connection_json(emulator.url),
        "AIRFLOW_CONN_ENOS_CLI_WRONG": enos_env.connection_json(emulator.url, secret_key=WRONG_SECRET),
    }

    times_before = emulator.state.count("time.getCurrentTime")
    ok = _airflow_cli(ui, "connections", "test", "enos_cli_ok", env=env)
    enos_env.assert_no_secret(
        ok.stdout + ok.stderr, "`airflow connections test` output", enos_env.secrets_with(emulator)
    )
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert "Connection success!" in ok.stdout
    assert emulator.state.count("time.getCurrentTime") > times_before

    tokens_before = emulator.state.count("token.get")
    wrong = _airflow_cli(ui, "connections", "test", "enos_cli_wrong", env=env)
    output = wrong.stdout + wrong.stderr
    enos_env.assert_no_secret(output, "`airflow connections test` output", enos_env.secrets_with(emulator))
    assert wrong.returncode == 1, output[-2000:]
    assert "Connection failed!" in wrong.stdout
    assert "signature is not valid" in wrong.stdout, wrong.stdout[-2000:]
    assert "secret key" in wrong.stdout
    assert emulator.state.count("token.get") > tokens_before
    assert [r.code for r in emulator.state.requests if r.operation == "token.get"][-1] == 1003
