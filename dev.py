#!/usr/bin/env python3
"""The README's two commands, on a fresh machine with nothing but Python 3.11+:

    python3 dev.py demo    # a whole night, locally: embedded PostgreSQL, sample shops, output in ./out
    python3 dev.py test    # the test suite (and ruff)

Each creates ./.venv on first use and installs what it needs into it (again only when
pyproject.toml or the lock changes). `test` (and so CI) installs exactly requirements-dev.lock, hashes
checked, then the project itself without dependencies: the same tools at the same versions every
day. Extra arguments go to the command underneath (pytest, catalog-submit demo).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
EXTRAS = {"demo": "local", "test": "test,local"}
# What each command installs from a lock instead of resolving pyproject.toml's ranges.
LOCKS = {"test": ROOT / "requirements-dev.lock"}


def install_commands(command: str) -> list[list[str]]:
    """The pip commands that prepare ./.venv for ``command``."""
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    lock = LOCKS.get(command)
    if lock is None:
        return [[*pip, "-e", f"{ROOT}[{EXTRAS[command]}]"]]
    return [[*pip, "--require-hashes", "-r", str(lock)], [*pip, "--no-deps", "-e", str(ROOT)]]


def ensure_venv(command: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 -- dev.py itself may be run by an older python3
        sys.exit(f"catalog-batch needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    lock = LOCKS.get(command)
    inputs = (ROOT / "pyproject.toml").read_bytes() + (lock.read_bytes() if lock else b"")
    digest = hashlib.sha256(inputs + EXTRAS[command].encode()).hexdigest()
    stamp = VENV / f".installed-{command}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    source = lock.name if lock else f"catalog-batch[{EXTRAS[command]}]"
    print(f"installing {source} into {VENV}", flush=True)
    for argv in install_commands(command):
        subprocess.run(argv, check=True)
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv(command)
    if command == "demo":
        return subprocess.run([str(BIN / "catalog-submit"), "demo", *rest], cwd=ROOT).returncode
    code = subprocess.run([str(PYTHON), "-m", "pytest", *rest], cwd=ROOT).returncode
    if code == 5:
        print("pytest collected no tests: that is a failure here", file=sys.stderr)
        return 1
    if code != 0:
        return code
    lint = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=ROOT).returncode
    return lint


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
