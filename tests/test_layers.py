"""The floors of the house (STYLE.md, "Floors"): each package imports only what is below it.

``worker.common`` ← ``worker.{collect,feed,images}`` ← ``worker.router``; a stage imports no other
stage; ``submitter`` uses ``worker.common`` and the registries (channels, formats and the mapping
language that shop files are validated against), never a stage's internals. Imports inside
functions count too: a lazy import is still a crossed floor.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("worker.collect", "worker.feed", "worker.images")
# What the submitter may use beyond worker.common: the registries and the mapping language's checker.
# worker.feed.product is the channels' input type (FeedProduct), part of the channel interface;
# worker.collect.preview is collect's one public function for reading a source's head.
SUBMITTER_MAY = ("worker.common", "worker.feed.channels", "worker.feed.product", "worker.collect.formats",
                 "worker.collect.mapping", "worker.collect.preview")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """Every module a file imports (absolute names), with its line, wherever the import stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield node.lineno, name
            for alias in node.names:  # "from worker.feed import channels" imports worker.feed.channels
                yield node.lineno, f"{name}.{alias.name}"


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


def crossings(package: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    found = []
    for path in _files(package):
        for line, name in imports_of(path):
            if any(_under(name, f) for f in forbidden) and not any(_under(name, a) for a in allowed):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return sorted(set(found))


def test_common_imports_no_stage_and_not_the_router() -> None:
    assert crossings("worker.common", (*STAGES, "worker.router", "submitter")) == []


# The one exception (STYLE.md floors): the channel registry's public functions, e.g. the images
# task reading each channel's image size rule.
REGISTRIES = ("worker.feed.channels", "worker.feed.channels.registry")


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_no_other_stage_nor_its_dispatcher(stage: str) -> None:
    others = tuple(s for s in STAGES if s != stage)
    found = crossings(stage, (*others, "worker.router", "submitter"))
    assert [f for f in found if not f.endswith(REGISTRIES)] == []


def test_submitter_uses_only_common_and_the_registries() -> None:
    assert crossings("submitter", ("worker",), allowed=SUBMITTER_MAY) == []


def test_no_test_module_imports_another_test_module() -> None:
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for line, name in imports_of(path):
            if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_"):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert found == []


def test_the_checker_sees_a_crossing() -> None:
    """The rules above would pass on a checker that finds nothing; this one must find a lazy import."""
    probe = ROOT / "worker" / "common" / "_layer_probe.py"
    probe.write_text("def f():\n    from worker.feed.channels import registry\n    return registry\n")
    try:
        assert crossings("worker.common", STAGES) == [
            "worker/common/_layer_probe.py:2 imports worker.feed.channels",
            "worker/common/_layer_probe.py:2 imports worker.feed.channels.registry",
        ]
    finally:
        probe.unlink()


def test_bench_depends_on_tests_never_the_reverse() -> None:
    """One direction only: the benchmarks use the tests' fixtures and catalog generator
    (tests/catalogs.py, tests/fixtures_db.py, tests/fixtures_http.py); no test imports bench."""
    assert crossings("bench", ("tests",)) != [], "bench no longer uses the tests' generator?"
    assert crossings("tests", ("bench",)) == []
