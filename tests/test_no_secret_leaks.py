"""Secrets never reach logs: the whole suite's log output is searched for every key and token it used."""

from __future__ import annotations

import pytest

from tests import enos_env as env
from tests.conftest import AIRFLOW_HOME, SUITE_LOG


@pytest.mark.runs_last
def test_no_secret_key_token_or_signature_in_any_log_or_the_database(request):
    tokens = env.SECRETS_SEEN - {env.SECRET_KEY}
    assert len(tokens) > 100, "the suite issued few tokens and signatures: this check would prove little"
    # Logs, task logs, and the metadata database (XCom, rendered template fields, connections).
    logs = [SUITE_LOG, *(p for p in (AIRFLOW_HOME / "logs").rglob("*") if p.is_file())]
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in logs)
    database = "".join(p.read_bytes().decode("latin-1") for p in AIRFLOW_HOME.glob("airflow.db*"))
    # The version matrix leaves the DAG runs out where Airflow cannot run them (see the Makefile).
    if any(item.path.name == "test_example_dags.py" for item in request.session.items):
        assert "example_enos_cancel_on_failure" in database, "the DAG runs left nothing in the database"
    text += database
    assert "flowInstances" in text, "the suite log holds no API traffic: capture is broken"
    env.assert_no_secret(text, "the suite's logs and database")
