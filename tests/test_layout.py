"""The package stays readable: no module over 500 lines, no function over 60 lines of code."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "airflow_enos_provider"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60  # not counting the docstring; a longer one says why in a "# long:" comment


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_over_500_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert long == {}


def test_no_function_over_60_lines_of_code() -> None:
    long = {}
    for path in _modules():
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            assert node.end_lineno is not None
            size = node.end_lineno - node.lineno + 1
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                assert first.end_lineno is not None
                size -= first.end_lineno - first.lineno + 1
            says_why = any("# long:" in line for line in lines[node.lineno - 1 : node.end_lineno])
            if size > MAX_FUNCTION_LINES and not says_why:
                long[f"{path.relative_to(PACKAGE)}:{node.name}"] = size
    assert long == {}
