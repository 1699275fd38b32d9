"""Secrets never reach logs: the whole suite's log output is searched for every key and token it used."""

from __future__ import annotations

import pytest

from tests import enos_env as env
from tests.conftest import AIRFLOW_HOME, SUITE_LOG


@pytest.mark.runs_last
def test_no_secret_key_or_token_in_any_log():
    tokens = env.SECRETS_SEEN - {env.SECRET_KEY}
    assert tokens, "the suite issued no token: this check would prove nothing"
    logs = [SUITE_LOG, *(p for p in (AIRFLOW_HOME / "logs").rglob("*") if p.is_file())]
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in logs)
    assert "flowInstances" in text, "the suite log holds no API traffic: capture is broken"
    leaked = sorted(s[:6] + "..." for s in env.SECRETS_SEEN if s in text)
    assert not leaked, f"secrets found in logs: {leaked}"
