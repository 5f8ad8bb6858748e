"""Build the submitter Lambda's zip: the project's packages plus the few dependencies it imports.

Usage::

    python infra/build_lambda.py                     # build/submitter-<sha12>.zip, with deps
    python infra/build_lambda.py --no-deps -o x.zip  # only the project's code (tests, offline)

The zip holds ``submitter/`` and ``worker/`` (the submitter shares ``worker.common``: settings,
errors, the schema's migrations) and, unless ``--no-deps``, the runtime dependencies the handler
needs at exactly the versions of requirements.lock, hashes checked, as manylinux wheels for the
Lambda's Python and architecture: the same versions the image installs. Pillow, ijson and orjson
(collect's) are left out: the handler never imports them (cold starts), and boto3 (with botocore
and what only it needs) comes with the Lambda runtime. The zip is reproducible (sorted entries,
fixed timestamps), and its default name carries its sha256, so that a changed zip is a new S3 key
and CloudFormation updates the function.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PACKAGES = ("submitter", "worker")
# Distributions the Lambda does without: never imported by the handler, or provided by the runtime.
LEFT_OUT = frozenset({"pillow", "ijson", "orjson", "boto3"})
# 1980-01-01, the earliest time a zip entry can hold: the same input gives the same bytes.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclasses.dataclass(frozen=True)
class Locked:
    """One entry of a uv/pip-tools lock: an exact version, its hashes, who pulls it in."""

    name: str
    version: str
    marker: str | None
    hashes: tuple[str, ...]
    via: tuple[str, ...]

    def requirement_line(self) -> str:
        marker = f" ; {self.marker}" if self.marker else ""
        return f"{self.name}=={self.version}{marker} " + " ".join(f"--hash={h}" for h in self.hashes)


def read_lock(path: Path = LOCK) -> list[Locked]:
    """The entries of a lock written by ``uv pip compile --generate-hashes`` (or pip-compile)."""
    entries: list[Locked] = []
    current: dict[str, Any] | None = None
    in_via = False
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", raw)
        if match:
            current = {"name": match.group(1).lower(), "version": match.group(2),
                       "marker": match.group(3), "hashes": [], "via": []}
            entries.append(current)  # type: ignore[arg-type]
            in_via = False
        elif current is not None and line.startswith("--hash="):
            current["hashes"].append(line.removeprefix("--hash=").rstrip(" \\"))
        elif current is not None and line.startswith("# via"):
            parent = line.removeprefix("# via").strip()
            in_via = not parent
            if parent:
                current["via"].append(parent.split(" (")[0].lower())
        elif current is not None and in_via and line.startswith("#   "):
            current["via"].append(line.removeprefix("#   ").split(" (")[0].strip().lower())
    return [Locked(e["name"], e["version"], e["marker"], tuple(e["hashes"]), tuple(e["via"]))
            for e in entries]  # type: ignore[index]


def lambda_requirements(lock: Path = LOCK) -> list[Locked]:
    """The lock's entries the Lambda needs: what the project requires directly, less LEFT_OUT,
    and what those pull in (a package only boto3 or Pillow needs stays out)."""
    entries = read_lock(lock)
    wanted: set[str] = set()
    changed = True
    while changed:
        changed = False
        for entry in entries:
            if entry.name in wanted or entry.name in LEFT_OUT:
                continue
            if any(parent == "catalog-batch" or parent in wanted for parent in entry.via):
                wanted.add(entry.name)
                changed = True
    return [entry for entry in entries if entry.name in wanted]


def runtime_requirements(lock: Path = LOCK) -> list[str]:
    """The Lambda's dependencies as exact pip requirement strings (``name==version``)."""
    return [f"{entry.name}=={entry.version}" for entry in lambda_requirements(lock)]


def project_files(root: Path = ROOT) -> Iterator[tuple[Path, str]]:
    """(file, name in the zip) for every file of the project's packages, caches left out."""
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
                continue
            yield path, path.relative_to(root).as_posix()


def install_dependencies(target: Path, *, python_version: str, platform: str) -> None:
    """pip-install the Lambda's locked dependencies, hashes checked, as binary wheels for its
    platform into ``target``."""
    requirements = target.parent / "lambda-requirements.txt"
    requirements.write_text(
        "".join(entry.requirement_line() + "\n" for entry in lambda_requirements()), encoding="utf-8"
    )
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
        "--target", str(target),
        "--platform", platform,
        "--implementation", "cp",
        "--python-version", python_version,
        "--only-binary=:all:",
        # The lock is the whole set: pip resolves nothing, and refuses a file whose hash differs.
        "--no-deps", "--require-hashes",
        "-r", str(requirements),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(
            f"build_lambda: pip could not install the Lambda's dependencies for {platform}, "
            f"Python {python_version} (exit {result.returncode}):\n{result.stderr.strip()}\n"
            "Check the network access to the package index, or build with --no-deps."
        )


def dependency_files(target: Path) -> Iterator[tuple[Path, str]]:
    """(file, name in the zip) for what pip installed into ``target``."""
    for path in sorted(target.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc"):
            yield path, path.relative_to(target).as_posix()


def write_zip(output: Path, entries: Iterator[tuple[Path, str]]) -> str:
    """Write the entries, sorted by name, reproducibly; return the zip's sha256."""
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.name + ".part")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, name in sorted(entries, key=lambda entry: entry[1]):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            # rw-r--r--, or rwxr-xr-x for what was executable: Lambda runs as another user.
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.external_attr = (0o100000 | mode) << 16
            with path.open("rb") as source, archive.open(info, "w") as sink:
                shutil.copyfileobj(source, sink)
    digest = hashlib.sha256()
    with temporary.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    temporary.replace(output)
    return digest.hexdigest()


def build(
    output: Path | None = None,
    *,
    with_dependencies: bool = True,
    python_version: str = "3.13",
    platform: str = "manylinux2014_x86_64",
    root: Path = ROOT,
    out_dir: Path | None = None,
) -> tuple[Path, str]:
    """Build the zip; return its path and sha256. Without ``output``, name it by its content
    (``submitter-<sha12>.zip`` in ``out_dir``, default ``build/``)."""
    with tempfile.TemporaryDirectory(prefix="build-lambda-") as scratch:
        entries = list(project_files(root))  # small by construction: the project's own files
        if with_dependencies:
            target = Path(scratch) / "deps"
            install_dependencies(target, python_version=python_version, platform=platform)
            entries.extend(dependency_files(target))
        path = output or (out_dir or root / "build") / "submitter.zip"
        sha = write_zip(path, iter(entries))
    if output is None:
        named = path.with_name(f"submitter-{sha[:12]}.zip")
        path.replace(named)
        path = named
    return path, sha


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-o", "--output", type=Path, help="zip to write (default build/submitter-<sha12>.zip)"
    )
    parser.add_argument("--no-deps", action="store_true", help="only the project's own code")
    parser.add_argument("--python-version", default="3.13", help="the Lambda runtime's Python")
    parser.add_argument(
        "--platform", default="manylinux2014_x86_64",
        help="wheel platform: manylinux2014_x86_64 (x86_64) or manylinux2014_aarch64 (arm64)",
    )
    args = parser.parse_args(argv)
    path, sha = build(
        args.output,
        with_dependencies=not args.no_deps,
        python_version=args.python_version,
        platform=args.platform,
    )
    print(f"{path}\t{path.stat().st_size} bytes\tsha256 {sha}")
    print(f"upload: aws s3 cp {path} s3://ARTIFACT_BUCKET/{path.name}")
    print(f"then deploy with SubmitterCodeKey={path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
