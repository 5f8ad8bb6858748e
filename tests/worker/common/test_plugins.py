"""Plug-in discovery: the modules that define the attribute, keyed by name; a name twice refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from worker.collect.formats import registry as formats
from worker.common.plugins import discover
from worker.feed.channels import registry as channels


def _package(root: Path, name: str, modules: dict[str, str]) -> None:
    folder = root / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for module, text in modules.items():
        (folder / f"{module}.py").write_text(text)


def test_only_modules_defining_the_attribute_are_plugins(tmp_path: Path, monkeypatch) -> None:
    _package(tmp_path, "plugs_ok", {
        "a": "class A:\n    name = 'alpha'\nPLUG = A\n",
        "b": "class B:\n    name = 'beta'\nPLUG = B()\n",
        "helpers": "def util():\n    return 1\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    import plugs_ok
    found = discover("plugs_ok", plugs_ok.__path__, "PLUG", "plug")
    assert sorted(found) == ["alpha", "beta"]
    assert found["alpha"] is sys.modules["plugs_ok.a"].A


def test_two_modules_registering_one_name_are_refused(tmp_path: Path, monkeypatch) -> None:
    _package(tmp_path, "plugs_twice", {
        "a": "class A:\n    name = 'same'\nPLUG = A\n",
        "b": "class B:\n    name = 'same'\nPLUG = B\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    import plugs_twice
    with pytest.raises(RuntimeError, match="two plug modules register the name 'same'"):
        discover("plugs_twice", plugs_twice.__path__, "PLUG", "plug")


def test_the_project_registries_use_it() -> None:
    assert set(formats()) == {"json", "jsonl", "csv", "xml"}
    assert {"google", "google_tsv", "meta", "naver", "naver_summary"} <= set(channels())
