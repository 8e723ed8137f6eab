"""Convention tests, as MNE does: documented parameters match signatures; no global numpy RNG."""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import ieegfm

SRC = Path(ieegfm.__file__).parent


def _public_callables():
    for info in pkgutil.walk_packages(ieegfm.__path__, "ieegfm."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                yield f"{module.__name__}.{name}", obj, obj
            elif inspect.isclass(obj):
                yield f"{module.__name__}.{name}", obj, obj.__init__
                for meth_name, meth in vars(obj).items():
                    if inspect.isfunction(meth) and not meth_name.startswith("_"):
                        yield f"{module.__name__}.{name}.{meth_name}", meth, meth


def _documented(doc: str) -> list[str] | None:
    m = re.search(r"\n\s*Parameters\n\s*-{4,}\n(.*?)(\n\s*\n\s*[A-Z][a-z]+\n\s*-{4,}|\Z)", doc, re.S)
    if m is None:
        return None
    indent = None
    names: list[str] = []
    for line in m.group(1).splitlines():
        if not line.strip():
            continue
        cur = len(line) - len(line.lstrip())
        indent = cur if indent is None else indent
        if cur == indent:
            head = line.strip().split(" : ")[0].rstrip(":")
            names += [n.strip() for n in head.split(",")]
    return names


def test_docstring_parameters_match_signatures():
    bad = []
    for qualname, obj, func in _public_callables():
        doc = inspect.getdoc(obj) or ""
        documented = _documented("\n" + doc)
        if documented is None:
            continue
        params = [
            ("*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else "") + p.name
            for p in inspect.signature(func).parameters.values()
            if p.name not in ("self", "cls")
        ]
        if documented != params:
            bad.append(f"{qualname}: documented {documented} != signature {params}")
    assert not bad, "\n".join(bad)


def test_no_global_numpy_rng():
    pattern = re.compile(r"np\.random\.(seed|rand|randn|random|normal|uniform|choice|permutation|shuffle|randint)\(")
    offenders = [
        f"{p.relative_to(SRC)}:{i}"
        for p in SRC.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders
