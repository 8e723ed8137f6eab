"""The front page and the documentation site: what a new user reads first, and an API reference of every module.

``make docs`` (run by CI) builds the site with warnings as errors; these tests check, without Sphinx, what the
build cannot: the README's length and shape, that the API reference lists every top-level module of the
package, and that every page the README links to exists.
"""

import pkgutil
import re
from pathlib import Path

import ieegfm

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _readme() -> list[str]:
    return (ROOT / "README.md").read_text(encoding="utf-8").splitlines()


def test_readme_is_a_front_page():
    lines = _readme()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; the guide pages under docs/ take the rest"
    long = [i for i, line in enumerate(lines, 1) if len(line) > 120]
    assert not long, f"README.md lines over 120 characters: {long}"
    first = "\n".join(lines[:30])
    assert re.search(r"^make demo\b", first, re.M) and re.search(r"^make test\b", first, re.M), (
        "the two set-up commands (make demo, make test) belong in the first 30 lines"
    )


def test_readme_links_resolve():
    text = "\n".join(_readme())
    targets = re.findall(r"\]\(((?:docs/)[^)#]+)", text)
    assert targets, "the README links to the guide pages"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_api_reference_lists_every_top_level_module():
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s+(ieegfm\.\w+)\s*$", api, re.M))
    modules = {f"ieegfm.{m.name}" for m in pkgutil.iter_modules(ieegfm.__path__) if not m.name.startswith("_")}
    assert modules - listed == set(), f"docs/api.md does not list {sorted(modules - listed)}"
    assert listed - modules == set(), f"docs/api.md lists modules that do not exist: {sorted(listed - modules)}"


def test_every_page_is_in_the_index():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    entries = set(re.findall(r"^([a-z][\w-]*)$", index, re.M))
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert pages - entries == set(), f"docs/index.md's toctree misses {sorted(pages - entries)}"
