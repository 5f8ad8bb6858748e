"""infra/build_lambda.py: the submitter's zip holds what the handler imports, reproducibly."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from infra import build_lambda
from tests.infra.fixtures_cfn import load_template, one_resource

# Imported by the handler but provided by the Lambda runtime, so left out of the zip.
RUNTIME_PROVIDES = ("boto3",)
# Imported by the runtime's botocore only when present (botocore.httpsession: `try: from certifi
# import where`, else its own CA bundle): loaded here because the test venv has it, needed nowhere.
OPTIONAL_FOR_BOTOCORE = {"certifi"}


def handler_module() -> str:
    _, function = one_resource(load_template(), "AWS::Lambda::Function")
    return str(function["Properties"]["Handler"]).rpartition(".")[0]


@pytest.fixture(scope="module")
def code_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = build_lambda.build(tmp_path_factory.mktemp("zip") / "submitter.zip",
                                 with_dependencies=False)
    return path


def test_zip_holds_the_two_packages_and_nothing_else(code_zip: Path) -> None:
    names = zipfile.ZipFile(code_zip).namelist()
    assert handler_module().replace(".", "/") + ".py" in names
    assert "worker/common/settings.py" in names
    assert "worker/common/migrations/0001_foundation.sql" in names  # migrate and check_schema
    assert all(name.split("/")[0] in build_lambda.PACKAGES for name in names), names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert names == sorted(names)


def test_zip_is_reproducible_and_named_by_its_content(tmp_path: Path) -> None:
    first, sha = build_lambda.build(with_dependencies=False, out_dir=tmp_path / "a")
    second, sha_again = build_lambda.build(with_dependencies=False, out_dir=tmp_path / "b")
    assert sha == sha_again and first.read_bytes() == second.read_bytes()
    assert first.name == f"submitter-{sha[:12]}.zip"
    assert [p.name for p in (tmp_path / "a").iterdir()] == [first.name]  # no leftovers


def test_zip_changes_when_the_code_changes(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for package in build_lambda.PACKAGES:
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text('"""x."""\n', encoding="utf-8")
    _, before = build_lambda.build(with_dependencies=False, root=root, out_dir=tmp_path)
    (root / "submitter" / "__init__.py").write_text('"""y."""\n', encoding="utf-8")
    _, after = build_lambda.build(with_dependencies=False, root=root, out_dir=tmp_path)
    assert before != after


def test_lambda_requirements_leave_out_what_the_handler_never_imports() -> None:
    names = {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower()
             for r in build_lambda.runtime_requirements()}
    assert not names & {"pillow", "ijson", "orjson", "boto3"}
    assert {"psycopg", "structlog"} <= names


PROBE = r"""
import importlib, importlib.abc, json, sys
zip_path, module = sys.argv[1], sys.argv[2]
before = {n.split(".")[0] for n in sys.modules}  # what the interpreter's start-up loaded

class Refuse(importlib.abc.MetaPathFinder):
    # Pillow, ijson and orjson are not in the Lambda: importing them must fail there, so here too.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("PIL", "ijson", "orjson"):
            raise ImportError(f"{name} is not in the Lambda's zip")
        return None

sys.meta_path.insert(0, Refuse())
sys.path.insert(0, zip_path)
handler_module = importlib.import_module(module)
assert callable(handler_module.handler)
# And what the handler imports only when it runs (inside the function, after the event is checked).
import ast
for node in ast.walk(ast.parse(handler_module.__loader__.get_source(module))):
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        importlib.import_module(node.module)
    elif isinstance(node, ast.Import):
        for alias in node.names:
            importlib.import_module(alias.name)
ours = {n: getattr(m, "__file__", "") or "" for n, m in sys.modules.items()
        if n.split(".")[0] in ("submitter", "worker")}
top = {n.split(".")[0] for n in sys.modules} - before
print(json.dumps({"ours": ours, "top": sorted(top)}))
"""


def dependency_closure(requirements: list[str]) -> set[str]:
    """Installed distributions these requirements pull in, transitively (normalised names)."""
    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    seen: set[str] = set()
    todo = [re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0] for r in requirements]
    extras = {"psycopg": ["psycopg-binary"]}  # psycopg[binary]
    while todo:
        name = norm(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        todo.extend(extras.get(name, []))
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo.extend(re.split(r"[\s\[<>=!~;(]", r, maxsplit=1)[0]
                    for r in requires if "extra ==" not in r)
    return seen


def test_the_handler_imports_from_the_zip_alone(code_zip: Path, tmp_path: Path) -> None:
    # -I: neither the working tree nor PYTHONPATH; the project's code can only come from the zip.
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(code_zip), handler_module()],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ours"], "the probe imported nothing of ours"
    outside = {n: f for n, f in report["ours"].items() if not f.startswith(str(code_zip))}
    assert not outside, f"imported from outside the zip: {outside}"
    # Every third-party module the handler loads comes with the zip's requirements or the runtime.
    allowed = dependency_closure(build_lambda.runtime_requirements() + list(RUNTIME_PROVIDES))
    by_module = metadata.packages_distributions()
    loaded = {re.sub(r"[-_.]+", "-", d).lower()
              for top in report["top"] for d in by_module.get(top, [])}
    # Where the project itself is installed (dev.py's editable install), worker/ and submitter/
    # map to it; that they came from the zip is asserted above.
    loaded.discard("catalog-batch")
    loaded -= OPTIONAL_FOR_BOTOCORE
    assert loaded, "the probe saw no installed distribution at all"
    assert loaded <= allowed, f"the handler needs distributions the zip lacks: {loaded - allowed}"
