"""
Sphinx configuration: the chapters in this directory, and the API reference
of the C{rpctransport} package made by pydoctor into C{api/} of the same
output (C{pydoctor.sphinx_ext.build_apidocs}), so that one C{sphinx-build}
makes both and its C{-W} turns pydoctor's warnings into errors too.

C{docs/build OUTPUT} is the way to run it: with warnings as errors and a
fresh environment. The links to Twisted and Python work without the network:
see C{inventories.py}.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from inventories import inventories  # noqa: E402

project = "rpctransport"
author = "rpctransport contributors"
copyright = "the rpctransport contributors"
release = importlib.metadata.version("rpctransport")
version = release

extensions = [
    "sphinx.ext.intersphinx",
    "pydoctor.sphinx_ext.build_apidocs",
]

root_doc = "index"
exclude_patterns = ["_build"]
# A reference that does not resolve is an error under -W.
nitpicky = True

html_theme = "alabaster"
html_title = f"rpctransport {release}"

_inventories = inventories()
intersphinx_mapping = {inv.name: inv.sphinx_mapping() for inv in _inventories}

# The API reference: pydoctor over the package, tests left out. The extension
# adds its objects.inv to intersphinx_mapping, so the chapters can refer to
# the API with :py:class: and friends; the links are relative to the pages.
pydoctor_url_path = "api/"
pydoctor_args = [
    "--project-name=rpctransport",
    f"--project-version={release}",
    f"--project-base-dir={ROOT}",
    "--docformat=epytext",
    "--html-output={outdir}/api",
    "--privacy=HIDDEN:rpctransport.test",
    "--privacy=HIDDEN:rpctransport.test.*",
    *[arg for inv in _inventories for arg in inv.pydoctor_args()],
    str(ROOT / "rpctransport"),
]
