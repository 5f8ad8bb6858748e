#!/usr/bin/env python3
"""The README's two commands, on a fresh machine with nothing but Python 3.11+:

    python3 dev.py demo    # a whole night, locally: embedded PostgreSQL, sample shops, output in ./out
    python3 dev.py test    # the test suite (and ruff)

Each creates ./.venv on first use and installs what it needs into it (again only when
pyproject.toml changes). Extra arguments go to the command underneath (pytest, catalog-submit demo).
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


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 -- dev.py itself may be run by an older python3
        sys.exit(f"catalog-batch needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / f".installed-{extras.replace(',', '-')}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"installing catalog-batch[{extras}] into {VENV}", flush=True)
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-e", f"{ROOT}[{extras}]"],
        check=True,
    )
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv(EXTRAS[command])
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
