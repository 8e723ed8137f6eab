"""Sphinx configuration of the ieegfm documentation site (``make docs``).

Why this stack: ieegfm's docstrings are numpydoc (the house style of MNE, scikit-learn, braindecode), which
Sphinx + numpydoc renders as written; the pages are MyST Markdown, so the guide reads the same on GitHub and on the
site; the PyData theme is MNE's and scikit-learn's. The build is offline (no intersphinx inventories fetched) and
runs with warnings as errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import ieegfm  # noqa: E402

project = "ieegfm"
author = "the ieegfm developers"
copyright = "2026, the ieegfm developers"
version = release = ieegfm.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
templates_path = ["_templates"]
exclude_patterns = ["_build", "generated/*.tmp", "Thumbs.db", ".DS_Store"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "none"  # numpydoc gives the types in the docstrings
autodoc_mock_imports = ["vec2text", "llama_cpp"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
suppress_warnings: list[str] = []
nitpicky = False

html_theme = "pydata_sphinx_theme"
html_title = f"ieegfm {version}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_static_path: list[str] = []
autodoc_inherit_docstrings = False  # Lightning's own docstrings are not ours to render
