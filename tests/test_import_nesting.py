"""Lower layers never import higher ones, and no module imports itself through others (open_clip / MNE
test_import_nesting).

The model library (encoders, heads, losses, signal processing, the checkpoint contract) never imports the trainer
side; evaluation never imports training code (the training schedule, pretraining or finetuning LightningModules,
runners). The static checks read every ``import`` of every module under ``src/ieegfm`` with :mod:`ast`, at module
level and inside functions alike (an import moved into a function to get past a cycle still counts), and follow
them transitively; the runtime checks import a module in a fresh interpreter and list what it loaded.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
TRAINER_SIDE = (
    "lightning",
    "webdataset",
    "ieegfm.data",
    "ieegfm.pretrain",
    "ieegfm.finetune",
    "ieegfm.training",
    "ieegfm.shards",
    "ieegfm.__main__",
)
TRAINING = ("ieegfm.pretrain", "ieegfm.finetune", "ieegfm.training", "ieegfm.__main__")
LIBRARY = (
    "ieegfm.models",
    "ieegfm.heads",
    "ieegfm.losses",
    "ieegfm.preprocess",
    "ieegfm.checkpoint",
    "ieegfm.evaluation.retrieval",
    "ieegfm.evaluation.stats",
)
#: Imports against the data flow, as (lower layer, what it must not reach): the simulator writes files as a hospital
#: would (it knows nothing of packing or training); the data pipeline needs no model; text targets sit below the
#: evaluation that scores them. Shared facts live below both (:mod:`ieegfm.conventions`).
AGAINST_FLOW = (
    ("ieegfm.simulate", ("ieegfm.shards", "ieegfm.data", "ieegfm.pretrain", "ieegfm.finetune", "ieegfm.training")),
    ("ieegfm.data", ("ieegfm.models", "ieegfm.heads", "ieegfm.losses")),
    ("ieegfm.text", ("ieegfm.evaluation",)),
    ("ieegfm.conventions", ("ieegfm",)),
)
#: Known cycles left in place, as ``(first, ..., first)`` paths with the issue that tracks them. Empty: none known.
KNOWN_CYCLES: tuple[tuple[str, ...], ...] = ()


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file of every module under ``root`` (a ``src`` folder); packages by their
    ``__init__.py``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def import_graph(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Every import of every module under ``root``, wherever it is written (module level, functions, classes).

    Returns
    -------
    internal : dict of str to set of str
        Module -> the modules under ``root`` it imports (``from pkg import name`` counts as ``pkg.name`` when that is
        a module, else as ``pkg``; relative imports resolved).
    external : dict of str to set of str
        Module -> the top-level names of the other distributions it imports (``lightning``, ``torch``, ...).
    """
    modules = _modules(root)
    internal: dict[str, set[str]] = {m: set() for m in modules}
    external: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module
                targets = [f"{source}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                found = target  # the longest module prefix: a submodule, else its package
                while found and found not in modules:
                    found = found.rpartition(".")[0]
                if not found:
                    external[name].add(target.partition(".")[0])
                elif found != name:
                    internal[name].add(found)
    return internal, external


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def package_graph(graph: dict[str, set[str]], depth: int = 2) -> dict[str, set[str]]:
    """``graph`` collapsed to packages (``ieegfm.finetune.run`` -> ``ieegfm.finetune``; top-level modules such as
    ``ieegfm.checkpoint`` stay themselves), without self-loops."""

    def top(m: str) -> str:
        return ".".join(m.split(".")[:depth])

    out: dict[str, set[str]] = {}
    for a, targets in graph.items():
        out.setdefault(top(a), set()).update(top(b) for b in targets if top(b) != top(a))
    return out


def reachable(graph: dict[str, set[str]], start: str) -> dict[str, list[str]]:
    """Every module ``start`` imports, directly or not, with one import chain to it."""
    chains = {start: [start]}
    todo = [start]
    while todo:
        m = todo.pop()
        for n in sorted(graph.get(m, ())):
            if n not in chains:
                chains[n] = [*chains[m], n]
                todo.append(n)
    return chains


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _violations(start: str, forbidden: tuple[str, ...]) -> list[str]:
    internal, external = GRAPH
    bad = []
    for module, chain in reachable(internal, start).items():
        if _within(module, forbidden):
            bad.append(" -> ".join(chain))
        bad += [f"{' -> '.join(chain)} -> {e}" for e in sorted(external[module]) if _within(e, forbidden)]
    return bad


GRAPH = import_graph(SRC)


def _under(prefix: str) -> list[str]:
    return sorted(m for m in GRAPH[0] if _within(m, (prefix,)))


def test_graph_sees_imports_inside_functions():
    internal, _ = GRAPH
    assert "ieegfm.finetune.run" in internal["ieegfm.__main__"]  # __main__ imports its subcommands lazily
    assert len(internal) > 50


def test_no_import_cycle_between_modules():
    internal, _ = GRAPH
    graph = {m: set(t) for m, t in internal.items()}
    for known in KNOWN_CYCLES:
        graph[known[-2]].discard(known[-1])
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_between_packages():
    cycle = find_cycle(package_graph(GRAPH[0]))
    if cycle is not None:  # name the module imports behind each step
        internal, _ = GRAPH
        steps = [
            f"{a} -> {b} ({', '.join(f'{m} -> {n}' for m in _under(a) for n in sorted(internal[m]) if _within(n, (b,)))})"
            for a, b in zip(cycle, cycle[1:])
        ]
        pytest.fail("import cycle between packages: " + "; ".join(steps))


@pytest.mark.parametrize("library", LIBRARY)
def test_library_never_imports_trainer_side(library):
    bad = [v for m in _under(library) for v in _violations(m, TRAINER_SIDE)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", _under("ieegfm.evaluation"))
def test_evaluation_never_imports_training(module):
    bad = _violations(module, TRAINING)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("lower, forbidden", AGAINST_FLOW, ids=[a for a, _ in AGAINST_FLOW])
def test_no_import_against_the_flow(lower, forbidden):
    bad = [v for m in _under(lower) for v in _violations(m, forbidden) if not _within(v.split(" -> ")[-1], (lower,))]
    assert not bad, "\n".join(bad)


def _imports_inside_functions(path: Path) -> list[str]:
    """``ieegfm`` imports written inside a function of the module at ``path``, as ``line: module``."""
    out = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("ieegfm")):
                    out.append(f"{node.lineno}: {node.module}")
    return out


#: Modules allowed an ``ieegfm`` import inside a function: the command line imports each subcommand when it runs.
LAZY_IMPORTS_ALLOWED = ("ieegfm.__main__",)


@pytest.mark.parametrize("package", ["ieegfm.analysis", "ieegfm.simulate", "ieegfm.config", "ieegfm.finetune.run"])
def test_no_import_hidden_in_a_function(package):
    """Analyses plan and report through the functions a user calls, imported at the top (nothing hides training)."""
    modules = _modules(SRC)
    bad = {m: _imports_inside_functions(modules[m]) for m in _under(package) if m not in LAZY_IMPORTS_ALLOWED}
    bad = {m: v for m, v in bad.items() if v}
    assert not bad, bad


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_finds_a_cycle_hidden_in_a_function(tmp_path):
    """A planted cycle (``pkg.a`` imports ``pkg.b`` at the top, ``pkg.b`` imports ``pkg.a`` inside a function, by a
    relative import) is found, with its path; without that import the graph has none."""
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import helper\n",
        "pkg/b.py": "import os\n\n\ndef helper():\n    from . import a, c\n\n    return a.thing\n",
        "pkg/c.py": "",
        "pkg/sub/__init__.py": "from ..a import helper\n",
    }
    _write(tmp_path, files)
    internal, external = import_graph(tmp_path)
    assert internal["pkg.b"] == {"pkg.a", "pkg.c"} and internal["pkg.sub"] == {"pkg.a"} and external["pkg.b"] == {"os"}
    assert find_cycle(internal) in (["pkg.a", "pkg.b", "pkg.a"], ["pkg.b", "pkg.a", "pkg.b"])
    _write(tmp_path, {"pkg/b.py": "def helper():\n    return 1\n"})
    assert find_cycle(import_graph(tmp_path)[0]) is None


def test_checker_finds_a_cycle_between_packages(tmp_path):
    _write(
        tmp_path,
        {
            "top/__init__.py": "",
            "top/low/__init__.py": "",
            "top/low/x.py": "def f():\n    import top.high.y\n",
            "top/high/__init__.py": "",
            "top/high/y.py": "from top.low import x\n",
        },
    )
    internal, _ = import_graph(tmp_path)
    assert find_cycle(internal) == ["top.high.y", "top.low.x", "top.high.y"]
    assert find_cycle(package_graph(internal)) == ["top.high", "top.low", "top.high"]


def _imported(module: str, forbidden: tuple[str, ...]) -> str:
    code = (
        f"import sys, {module}; bad = [m for m in sys.modules "
        f"if any(m == f or m.startswith(f + '.') for f in {forbidden!r})]; print(','.join(bad))"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("module", LIBRARY)
def test_library_does_not_load_trainer_side_at_runtime(module):
    """At runtime too (catches imports that :mod:`ast` cannot see: ``importlib``, plugins)."""
    assert _imported(module, TRAINER_SIDE) == "", module


@pytest.mark.parametrize("module", ["ieegfm.evaluation", "ieegfm.evaluation.evaluate"])
def test_evaluation_does_not_load_training_at_runtime(module):
    assert _imported(module, TRAINING) == "", module
