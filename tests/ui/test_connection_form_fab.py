"""The EnOS connection form of Airflow 2.11's Flask webserver (FAB), in a real browser.

A user logs in through FAB's login page, adds an ``enos`` connection on Admin > Connections, checks
that the form shows the fields, labels, placeholders and defaults of ``get_provider_info()`` (the
same texts the 3.x form shows, served here by the hook's ``get_connection_form_widgets`` and
``get_ui_field_behaviour``), saves it, reopens it and presses Test (right secret, then a wrong one).
Collected on Airflow 2 only (tests/ui/conftest.py); screenshots in build/ui/airflow-2.11.

The 2.11 form never sends the stored secret back to the browser: on reopening, the user types it
again before pressing Test, which tests what the form holds, not the saved connection.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests import enos_env
from tests.ui.conftest import ADMIN, UI_BUILD, UIAirflow
from tests.ui.test_connection_form import CONN_ID, WRONG_SECRET, _airflow_cli, _enos_form, _screenshot

pytestmark = pytest.mark.timeout(420)  # the module's first test also starts Airflow

SHOTS = "airflow-2.11"  # under build/ui
CHOSEN_TYPE = "#conn_type + .select2-container .select2-selection__rendered"  # Select2 4 shows the choice


def _log_in(page: Page, ui: UIAirflow) -> None:
    page.goto(ui.url)
    expect(page).to_have_url(f"{ui.url}/login/?next={ui.url}/home")  # FAB's own login page
    page.locator("#username").fill(ADMIN)
    page.locator("#password").fill(ui.password)
    page.get_by_role("button", name="Sign In").or_(page.locator("input[type=submit]")).first.click()
    expect(page.get_by_role("link", name="Admin")).to_be_visible()


def _choose_type(page: Page, label: str) -> None:
    """Pick the connection type in FAB's Select2 box as a user does: open it, type, Enter."""
    page.locator("#conn_type + .select2-container .select2-selection").click()
    search = page.locator(".select2-dropdown .select2-search__field")
    search.fill(label)
    expect(page.locator(".select2-results__option--highlighted")).to_have_text(label)
    search.press("Enter")
    expect(page.locator(CHOSEN_TYPE)).to_have_attribute("title", label)


def _field_group(page: Page, field_id: str) -> Locator:
    """The form row (label, input, help text) of the input with this id."""
    return page.locator("#model_form tr, #model_form .form-group").filter(has=page.locator(f"#{field_id}"))


def _check_form(page: Page) -> None:
    """The standard fields relabelled with placeholders, schema hidden, every extra field as declared."""
    conn_fields, behaviour = _enos_form()
    for field, label in behaviour["relabeling"].items():
        expect(page.locator(f"label[for='{field}']")).to_have_text(label)
        element = page.locator(f"#{field}")
        expect(element).to_be_visible()
        expect(element).to_have_attribute("placeholder", behaviour["placeholders"][field])
    for field in behaviour["hidden-fields"]:
        expect(page.locator(f"#{field}")).to_be_hidden()
    for name, spec in conn_fields.items():
        field_id = f"extra__enos__{name}"
        element = page.locator(f"#{field_id}")
        expect(element).to_be_visible()
        expect(page.locator(f"label[for='{field_id}']")).to_have_text(spec["label"])
        expect(_field_group(page, field_id)).to_contain_text(spec["description"])
        expect(element).to_have_attribute("placeholder", behaviour["placeholders"][name])
        default = spec["schema"].get("default")
        expect(element).to_have_value("" if default is None else str(default))


def _press_test(page: Page, expected: str) -> str:
    """Press the form's Test button and return the text of the alert that holds ``expected``."""
    page.locator("#test-connection").click()
    alert = page.locator(".alert").filter(has_text=expected)
    expect(alert).to_be_visible(timeout=60_000)
    # The alert opens above the form, out of the viewport the Test button left: scroll up, so the
    # screenshot taken next shows it.
    page.evaluate("window.scrollTo(0, 0)")
    return alert.inner_text()


def test_fab_connection_form_in_browser(ui_airflow: UIAirflow, browser_context: BrowserContext) -> None:
    ui, emulator = ui_airflow, ui_airflow.emulator
    (UI_BUILD / SHOTS).mkdir(parents=True, exist_ok=True)
    (UI_BUILD / SHOTS / "failure.png").unlink(missing_ok=True)
    secrets = enos_env.secrets_with(emulator)
    page = browser_context.new_page()
    try:
        _log_in(page, ui)
        page.get_by_role("link", name="Admin").click()
        page.get_by_role("link", name="Connections").click()
        page.locator("a[href*='/connection/add']").first.click()
        page.locator("#conn_id").fill(CONN_ID)
        _choose_type(page, "EnOS")
        _check_form(page)
        _, behaviour = _enos_form()
        page.locator("#host").fill(emulator.url)
        page.locator("#login").fill(enos_env.ACCESS_KEY)
        page.locator("#password").fill(enos_env.SECRET_KEY)
        page.locator("#extra__enos__org_id").fill(enos_env.ORG_ID)
        page.locator("#extra__enos__user_id").fill(enos_env.USER_ID)
        page.evaluate("window.scrollTo(0, 0)")  # else the fixed navbar lands mid-page in a full-page shot
        page.screenshot(path=str(UI_BUILD / SHOTS / "connection-form.png"), full_page=True)
        page.locator("#model_form").get_by_role("button", name="Save").click()
        row = page.locator("tr").filter(has=page.get_by_text(CONN_ID, exact=True))
        expect(row).to_contain_text(emulator.url)

        # Reopen: the saved values come back, the secret key does not.
        row.locator("a[href*='/connection/edit/']").first.click()
        expect(page.locator("#conn_id")).to_have_value(CONN_ID)
        expect(page.locator(CHOSEN_TYPE)).to_have_attribute("title", "EnOS")
        expect(page.locator("#host")).to_have_value(emulator.url)
        expect(page.locator("#login")).to_have_value(enos_env.ACCESS_KEY)
        expect(page.locator("#extra__enos__org_id")).to_have_value(enos_env.ORG_ID)
        expect(page.locator("#extra__enos__timeout")).to_have_value("30")
        expect(page.locator("label[for='password']")).to_have_text(behaviour["relabeling"]["password"])
        expect(page.locator("#password")).to_have_value("")

        times_before = emulator.state.count("time.getCurrentTime")
        page.locator("#password").fill(enos_env.SECRET_KEY)
        message = _press_test(page, "signed call accepted")
        assert f"Connected to {emulator.url}: signed call accepted" in message, message
        assert emulator.state.count("time.getCurrentTime") > times_before
        _screenshot(page, f"{SHOTS}/connection-test.png")

        page.locator("#password").fill(WRONG_SECRET)
        message = _press_test(page, "signature is not valid")
        assert "secret key" in message, message
        enos_env.assert_no_secret(message, "the Test message", secrets)
        enos_env.assert_no_secret(page.content(), "the connection form", secrets)
        assert [r.code for r in emulator.state.requests if r.operation == "token.get"][-1] == 1003
        _screenshot(page, f"{SHOTS}/connection-test-failed.png")
    except BaseException:
        _screenshot(page, f"{SHOTS}/failure.png")
        raise
    finally:
        page.close()

    got = _airflow_cli(ui, "connections", "get", CONN_ID, "-o", "json")
    assert got.returncode == 0, got.stderr[-2000:]
    (saved,) = json.loads(got.stdout)
    assert (saved["conn_type"], saved["host"], saved["login"]) == ("enos", emulator.url, enos_env.ACCESS_KEY)
    assert saved["password"] == enos_env.SECRET_KEY  # the form saved it; Test never changed it
    extra = saved["extra_dejson"]
    assert (extra["org_id"], extra["user_id"]) == (enos_env.ORG_ID, enos_env.USER_ID)
