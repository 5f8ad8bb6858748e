"""Build the submitter Lambda's zip: the project's packages plus the few dependencies it imports.

Usage::

    python infra/build_lambda.py                     # build/submitter-<sha12>.zip, with deps
    python infra/build_lambda.py --no-deps -o x.zip  # only the project's code (tests, offline)

The zip holds ``submitter/`` and ``worker/`` (the submitter shares ``worker.common``: settings,
errors, the schema's migrations) and, unless ``--no-deps``, the runtime dependencies from
pyproject.toml that the handler needs, as manylinux wheels for the Lambda's Python and
architecture. Pillow, ijson and orjson (collect's) are left out: the handler never imports them
(cold starts), and boto3 comes with the Lambda runtime. The zip is reproducible (sorted entries,
fixed timestamps), and its default name carries its sha256, so that a changed zip is a new S3 key
and CloudFormation updates the function.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("submitter", "worker")
# Distributions the Lambda does without: never imported by the handler, or provided by the runtime.
LEFT_OUT = frozenset({"pillow", "ijson", "orjson", "boto3"})
# 1980-01-01, the earliest time a zip entry can hold: the same input gives the same bytes.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def runtime_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The project's runtime dependencies the Lambda needs, as pip requirement strings."""
    with pyproject.open("rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    wanted = []
    for requirement in dependencies:
        name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()
        if name not in LEFT_OUT:
            wanted.append(requirement)
    return wanted


def project_files(root: Path = ROOT) -> Iterator[tuple[Path, str]]:
    """(file, name in the zip) for every file of the project's packages, caches left out."""
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
                continue
            yield path, path.relative_to(root).as_posix()


def install_dependencies(target: Path, *, python_version: str, platform: str) -> None:
    """pip-install the Lambda's dependencies as binary wheels for its platform into ``target``."""
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
        "--target", str(target),
        "--platform", platform,
        "--implementation", "cp",
        "--python-version", python_version,
        "--only-binary=:all:",
        *runtime_requirements(),
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
