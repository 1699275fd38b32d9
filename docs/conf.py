"""Sphinx configuration of the documentation site: ``make docs`` builds it into ``build/docs``.

The build needs no network: no intersphinx, no remote images, a theme that ships with Sphinx.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# autodoc imports Airflow, which writes a config file into AIRFLOW_HOME: keep that out of the
# user's ~/airflow unless they chose a home themselves.
os.environ.setdefault(
    "AIRFLOW_HOME", str(Path(__file__).resolve().parent.parent / "build" / "docs-airflow-home")
)

from airflow_enos_provider import __version__

project = "airflow-enos-provider"
author = "airflow-enos-provider contributors"
copyright = "the airflow-enos-provider contributors"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "img/README*"]
root_doc = "index"

html_theme = "alabaster"
html_title = f"airflow-enos-provider {release}"
html_theme_options = {"description": "EnOS Batch Processing for Apache Airflow", "fixed_sidebar": True}

# The docstrings use Sphinx :param: fields; signatures keep the type hints as written.
autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "class"

myst_heading_anchors = 3

# Nitpicky (-n): every reference to this package must resolve. References to Airflow, requests and
# the standard library cannot, without intersphinx inventories fetched over the network; nor can
# names imported only for type checking.
nitpick_ignore_regex = [
    (
        "py:class",
        r"(airflow|requests|aiohttp|yarl|datetime|collections\.abc|contextlib|enum|os|typing|types)\..+",
    ),
    ("py:class", r"Context|Connection|BaseOperator|TaskInstanceKey|SharedStreamProducer|asyncio\..+"),
    ("py:class", r"airflow_enos_provider\..+\.T|concurrent\.futures\..+"),  # a TypeVar; the stdlib
    ("py:obj", r"airflow_enos_provider\..+\.T"),
    # Internal types in public signatures (a settings object, a failure report): not documented, so
    # not linked; docs/api.rst documents the public names only.
    ("py:class", r"airflow_enos_provider\.(.+\.)?_\w+\..+"),
]


def _public_bases(app: object, name: str, obj: type, options: object, bases: list[type]) -> None:
    # Show a private base class (_EnOSOperator) as the public classes it derives from.
    bases[:] = [b for base in bases for b in (base.__bases__ if base.__name__.startswith("_") else (base,))]


def setup(app: Any) -> dict[str, bool]:
    app.connect("autodoc-process-bases", _public_bases)
    return {"parallel_read_safe": True}
