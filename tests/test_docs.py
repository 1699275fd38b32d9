"""The documentation shows the code the tests run: README quickstart, literalincludes, commands, links."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from tests.airflow_cli import airflow_cli, last_json_line
from tests.conftest import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
QUICKSTART = ROOT / "example_dags" / "example_enos_quickstart.py"
EXAMPLE_DAGS = sorted((ROOT / "example_dags").glob("example_*.py"))


def fenced_blocks(text: str, language: str) -> list[tuple[int, str]]:
    """Return (line number of the opening fence, content) of each ```language block."""
    blocks = []
    for match in re.finditer(rf"^```{language}\n(.*?)^```$", text, flags=re.M | re.S):
        blocks.append((text.count("\n", 0, match.start()) + 1, match.group(1)))
    return blocks


def literalincludes() -> list[tuple[Path, Path, dict[str, str]]]:
    """Return (page, included file, options) for every literalinclude in docs/, rst and MyST."""
    found = []
    for page in sorted([*DOCS.rglob("*.rst"), *DOCS.rglob("*.md")]):
        text = page.read_text(encoding="utf-8")
        pattern = r"^(?:\.\. literalinclude::|```\{literalinclude\}) *(\S+)\n((?:[ \t]*:[\w-]+:.*\n)*)"
        for match in re.finditer(pattern, text, flags=re.M):
            target, raw_options = match.groups()
            options = dict(re.findall(r"^[ \t]*:([\w-]+):[ \t]*(.*)$", raw_options, flags=re.M))
            # Sphinx resolves a leading "/" against the source directory, anything else against the page.
            base = DOCS if target.startswith("/") else page.parent
            found.append((page, (base / target.lstrip("/")).resolve(), options))
    return found


def test_readme_quickstart_block_is_the_quickstart_dag_file():
    text = README.read_text(encoding="utf-8")
    (mention,) = [m for m in re.finditer(r"`example_dags/example_enos_quickstart\.py`", text)]
    following = text[mention.end() :]
    block = re.search(r"^```python\n(.*?)^```$", following, flags=re.M | re.S)
    assert block is not None, "no python block follows the mention of the quickstart file"
    assert block.group(1) == QUICKSTART.read_text(encoding="utf-8")


def test_readme_first_screen_gets_to_a_cancel():
    # Install, connection, DAG and run command, in that order, before anything else.
    lines = README.read_text(encoding="utf-8").splitlines()
    first_screen = "\n".join(lines[:50])
    steps = [
        "pip install airflow-enos-provider",
        "airflow connections add enos_default",
        "docs/img/connection-form.png)",
        "CancelFlowInstanceOperator(task_id=",
        "airflow dags test example_enos_quickstart",
    ]
    positions = [first_screen.find(step) for step in steps]
    assert -1 not in positions, dict(zip(steps, positions, strict=True))
    assert positions == sorted(positions)


def readme_connection_command() -> str:
    text = README.read_text(encoding="utf-8")
    (command,) = [b for _, b in fenced_blocks(text, "bash") if "airflow connections add" in b]
    return command


def test_the_docs_show_the_readme_connection_command():
    command = readme_connection_command().strip()
    for page in (DOCS / "index.rst", DOCS / "connection.rst"):
        text = page.read_text(encoding="utf-8")
        dedented = "\n".join(line.removeprefix("   ") for line in text.splitlines())
        assert command in dedented, f"{page.name} shows another connection command than the README"


def test_readme_connection_command_makes_a_connection_the_hook_accepts(tmp_path, monkeypatch):
    home = tmp_path / "airflow-home"
    env = {**os.environ, "AIRFLOW_HOME": str(home)}

    def airflow(*args: str) -> str:
        done = airflow_cli(*args, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    airflow("db", "migrate")
    argv = shlex.split(readme_connection_command().replace("\\\n", " "))
    assert argv[:3] == ["airflow", "connections", "add"]
    airflow(*argv[1:])
    (stored,) = last_json_line(airflow("connections", "get", "enos_default", "-o", "json"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_ENOS_DEFAULT",
        json.dumps(
            {k: stored[k] for k in ("conn_type", "host", "login", "password")}
            | {"extra": stored["extra_dejson"]}
        ),
    )
    from airflow_enos_provider.hooks.enos import EnOSHook

    settings = EnOSHook().settings
    assert (settings.gateway_url, settings.access_key, settings.secret_key) == (
        "https://apim-ppe1.envisioniot.com",
        "ACCESS_KEY",
        "SECRET_KEY",
    )
    assert settings.batch_identity(None, None) == ("u15724268424842", "o15724268424841")


def documented_connection_variables() -> list[tuple[str, str]]:
    found = []
    for page in [README, *sorted(DOCS.rglob("*.rst"))]:
        text = page.read_text(encoding="utf-8")
        found += [(page.name, value) for value in re.findall(r"AIRFLOW_CONN_ENOS_DEFAULT='([^']*)'", text)]
    return found


@pytest.mark.parametrize(("page", "value"), documented_connection_variables())
def test_documented_connection_variables_give_valid_settings(page, value, monkeypatch):
    from airflow_enos_provider.hooks.enos import EnOSHook

    if value.startswith("{"):
        json.loads(value)  # a JSON typo would otherwise be read as a URI
    monkeypatch.setenv("AIRFLOW_CONN_ENOS_DEFAULT", value)
    settings = EnOSHook().settings
    user_id, org_id = settings.batch_identity(None, None)
    assert settings.gateway_url.startswith(("https://", "http://127.0.0.1:")) and user_id and org_id


def test_documented_connection_variables_are_found():
    pages = {page for page, _ in documented_connection_variables()}
    # The README links to these pages rather than repeating the variable.
    assert {"connection.rst", "emulator.rst"} <= pages


def test_every_literalinclude_points_at_a_file_and_its_markers():
    includes = literalincludes()
    assert includes, "no literalinclude found in docs/"
    for page, target, options in includes:
        where = f"{page.relative_to(ROOT)} -> {target}"
        assert target.is_file(), f"{where}: no such file"
        text = target.read_text(encoding="utf-8")
        start, end = options.get("start-after"), options.get("end-before")
        assert (start is None) == (end is None), f"{where}: give both markers or none"
        if start is None:
            continue
        assert text.count(start) == 1, f"{where}: marker {start!r} must occur exactly once"
        assert text.count(end) == 1, f"{where}: marker {end!r} must occur exactly once"
        region = text[text.index(start) + len(start) : text.index(end)]
        assert region.strip(), f"{where}: nothing between {start!r} and {end!r}"
        assert "[START " not in region and "[END " not in region, f"{where}: nested markers"


def test_every_example_dag_is_shown_in_the_docs():
    included = {target for _, target, _ in literalincludes()}
    assert EXAMPLE_DAGS and not [p.name for p in EXAMPLE_DAGS if p.resolve() not in included]


def test_every_marker_in_the_example_dags_is_closed_and_used():
    used = {options["start-after"] for _, _, options in literalincludes() if "start-after" in options}
    for path in EXAMPLE_DAGS:
        text = path.read_text(encoding="utf-8")
        starts = re.findall(r"# (\[START [\w]+\])", text)
        ends = re.findall(r"# (\[END [\w]+\])", text)
        assert [s.replace("START", "END") for s in starts] == ends, path.name
        assert set(starts) <= used, f"{path.name}: markers no page includes: {set(starts) - used}"


def github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_links_point_at_files_and_headings():
    text = README.read_text(encoding="utf-8")
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        if link.startswith("#"):
            assert link[1:] in anchors, f"README links to a missing heading: {link}"
        else:
            assert (ROOT / link.split("#")[0]).exists(), f"README links to a missing file: {link}"


def test_the_quickstart_says_how_to_install_before_and_after_the_release():
    from airflow_enos_provider import __version__

    wheel = f"pip install dist/airflow_enos_provider-{__version__}-py3-none-any.whl"
    for page in (README, DOCS / "index.rst"):
        text = page.read_text(encoding="utf-8")
        install = text[: text.index("airflow connections add enos_default")]
        assert "pip install .    # in a clone of" in install, page.name
        assert wheel in install, f"{page.name} names another wheel than version {__version__} builds"
        assert "pip install airflow-enos-provider" in install, page.name


def test_every_test_the_docs_name_exists():
    # The failure-modes page proves each claim by naming a test; a renamed test must not leave it lying.
    named = set()
    for page in [README, *DOCS.rglob("*.rst"), *DOCS.rglob("*.md")]:
        named |= set(re.findall(r"(tests/[\w/]+\.py)::(test_\w+\*?)", page.read_text(encoding="utf-8")))
    assert named, "no page names a test"
    missing = []
    for path, name in sorted(named):
        pattern = r"^(async )?def " + name.replace("*", r"\w*") + r"\("
        file = ROOT / path
        if not file.is_file() or not re.search(pattern, file.read_text(encoding="utf-8"), flags=re.M):
            missing.append(f"{path}::{name}")
    assert missing == []


def test_the_readme_says_how_to_enable_airflow_connections_test(tmp_path, emulator):
    from tests import enos_env
    from tests.airflow_cli import airflow_cli, fresh_airflow_env

    readme = README.read_text(encoding="utf-8")
    assert (
        "`[core] test_connection = Enabled`" in readme and "AIRFLOW__CORE__TEST_CONNECTION=Enabled" in readme
    )
    env = {**fresh_airflow_env(tmp_path), "AIRFLOW_CONN_ENOS_DEFAULT": enos_env.connection_json(emulator.url)}
    refused = airflow_cli("connections", "test", "enos_default", env=env, timeout=120)
    assert refused.returncode != 0 and "Testing connections is disabled" in refused.stdout + refused.stderr
    # The setting the README names is the one that enables it.
    enabled = airflow_cli(
        "connections",
        "test",
        "enos_default",
        env={**env, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"},
        timeout=120,
    )
    assert enabled.returncode == 0, enabled.stdout[-2000:] + enabled.stderr[-2000:]
    assert "Connection success!" in enabled.stdout


def test_the_security_page_is_in_the_guides_and_covers_its_topics():
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    assert "\n   security\n" in index
    page = (DOCS / "security.rst").read_text(encoding="utf-8")
    for heading in ("What is secret", "How it is kept out of sight", "TLS", "Proxies", "Redirects"):
        assert f"\n{heading}\n" in page, heading
    assert "What the emulator must never be used for" in page
    for secret in ("apim-accesstoken", "apim-signature", "encryption", "mask_secret"):
        assert secret in page


def test_the_readme_stays_under_10_kb():
    # Issue 21: the quickstart first, the rest linked; the parameter reference lives in the docstrings.
    assert len(README.read_bytes()) <= 10_000
