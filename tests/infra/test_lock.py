"""requirements.lock and requirements-dev.lock: exact versions with hashes, in agreement with
pyproject.toml, used by the image, the Lambda zip and dev.py (so CI), and what this venv holds."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from infra import build_lambda
from tests.infra.fixtures_cfn import ROOT

RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"


def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path) -> dict[str, build_lambda.Locked]:
    return {norm(entry.name): entry for entry in build_lambda.read_lock(path)}


@pytest.mark.parametrize("path", [RUNTIME_LOCK, DEV_LOCK], ids=lambda p: p.name)
def test_every_entry_is_an_exact_version_with_hashes(path: Path) -> None:
    entries = build_lambda.read_lock(path)
    assert len(entries) >= 10
    lines = [line for line in path.read_text(encoding="utf-8").splitlines()
             if re.match(r"^[A-Za-z0-9]", line)]
    assert len(lines) == len(entries), "the lock has lines the reader did not take as entries"
    for entry in entries:
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", entry.version), entry
        assert entry.hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in entry.hashes)
        assert entry.via, f"{entry.name}: no `# via`, so the Lambda could not tell who needs it"
    # The command that made it is in its header, so anyone can make it again.
    assert "uv pip compile pyproject.toml" in path.read_text(encoding="utf-8").splitlines()[1]


def test_the_runtime_lock_satisfies_the_projects_requirements() -> None:
    entries = locked(RUNTIME_LOCK)
    for text in pyproject()["project"]["dependencies"]:
        requirement = Requirement(text)
        entry = entries.get(norm(requirement.name))
        assert entry is not None, f"{requirement.name} is a dependency but not in the lock"
        assert requirement.specifier.contains(entry.version, prereleases=True), (text, entry.version)
    # python-stdnum (GS1 check digits) is a runtime dependency: the image must have it.
    assert "python-stdnum" in entries


def test_the_dev_lock_pins_the_test_tools_and_agrees_with_the_runtime_lock() -> None:
    dev = locked(DEV_LOCK)
    for text in pyproject()["project"]["optional-dependencies"]["test"]:
        requirement = Requirement(text)
        (spec,) = requirement.specifier
        # Exact pins only: a tool that changed on a date would change CI with no change of ours.
        assert spec.operator == "==", f"{text}: pin the test tools exactly"
        assert dev[norm(requirement.name)].version == spec.version, text
    # CI tests exactly what the image and the Lambda run.
    for name, entry in locked(RUNTIME_LOCK).items():
        assert dev[name].version == entry.version, name
    build = pyproject()["build-system"]["requires"]
    assert all("==" in r for r in build), f"the build backend is not pinned: {build}"


def test_this_environment_is_the_dev_lock() -> None:
    # dev.py test (so CI) installs the dev lock with hashes: every entry that applies here is
    # installed at its locked version.
    wrong = {}
    for name, entry in locked(DEV_LOCK).items():
        if entry.marker and not Marker(entry.marker).evaluate():
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong[name] = (entry.version, None)
            continue
        if installed != entry.version:
            wrong[name] = (entry.version, installed)
    assert not wrong, f"locked vs installed: {wrong} (run python3 dev.py test to reinstall)"


def load_dev_py() -> Any:
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dev_py_installs_the_test_environment_from_the_lock() -> None:
    dev = load_dev_py()
    locked_install, project = dev.install_commands("test")
    assert locked_install[-3:] == ["--require-hashes", "-r", str(DEV_LOCK)]
    # The project itself without dependencies: nothing beyond the lock is resolved.
    assert project[-3:] == ["--no-deps", "-e", str(ROOT)]
    # The demo still installs from pyproject.toml (no test tools).
    (demo,) = dev.install_commands("demo")
    assert demo[-1] == f"{ROOT}[local]"


def test_the_lambda_takes_its_dependencies_from_the_lock() -> None:
    entries = {norm(e.name): e for e in build_lambda.lambda_requirements()}
    runtime = locked(RUNTIME_LOCK)
    for name, entry in entries.items():
        assert entry == runtime[name]  # same version, same hashes as the image
    # What the handler imports, and what they pull in …
    assert {"psycopg", "psycopg-binary", "structlog", "urllib3", "python-stdnum"} <= set(entries)
    # … and not what only collect or boto3 (the Lambda runtime's own) needs.
    assert not set(entries) & {"pillow", "ijson", "orjson", "boto3", "botocore", "s3transfer",
                               "jmespath", "python-dateutil", "six"}
    # urllib3 stays although botocore also pulls it in: the project asks for it directly.
    assert "catalog-batch" in runtime["urllib3"].via


def test_the_lock_reader_reads_both_via_styles(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# header\n#    uv pip compile\n"
        "a==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via catalog-batch (pyproject.toml)\n"
        "b==2.0 ; python_full_version < '3.13' \\\n    --hash=sha256:" + "1" * 64 + " \\\n"
        "    --hash=sha256:" + "2" * 64 + "\n    # via\n    #   a\n    #   c\n"
        "c==3.0 \\\n    --hash=sha256:" + "3" * 64 + "\n    # via pillow\n",
        encoding="utf-8",
    )
    a, b, c = build_lambda.read_lock(lock)
    assert c.via == ("pillow",)
    assert (a.name, a.version, a.via) == ("a", "1.0", ("catalog-batch",))
    assert (b.marker, len(b.hashes), b.via) == ("python_full_version < '3.13'", 2, ("a", "c"))
    assert [e.name for e in build_lambda.lambda_requirements(lock)] == ["a", "b"]
    assert b.requirement_line().startswith("b==2.0 ; python_full_version < '3.13' --hash=sha256:")
