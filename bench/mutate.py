"""A small mutation run (not in CI; docs/mutation.md): do a module's tests notice when its logic changes?

    python bench/mutate.py MODULE.py [--functions 'glob,glob'] [--sample 40] [--seed 0]
                           [--timeout SECONDS] [--then WIDER_TESTS ...] [--out report.md]
                           TEST_PATH [TEST_PATH ...]

Mutants are made from the module's AST, only inside function bodies: a comparison flipped
(``<`` ↔ ``<=``, ``>`` ↔ ``>=``, ``==`` ↔ ``!=``, ``in`` ↔ ``not in``, ``is`` ↔ ``is not``), a numeric
constant ± 1, ``and`` ↔ ``or``, a condition negated (``if``, ``while``, ``x if c else y``), a
``raise`` replaced by ``pass``, a returned value replaced by ``None``. ``--sample N`` takes N of
them evenly over the module's (selected) functions: round-robin over the functions, each one's
mutants in a seeded random order. Each mutant is written into a copy of the repository and the
given tests run against it (``pytest -x``) with a per-mutant timeout; a mutant is *killed* when the
tests fail or time out, *survived* when they pass. One PostgreSQL server is started for the whole
run (the tests' provider chain, ``tests/fixtures_db.py``) unless ``TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}


@dataclass(frozen=True)
class Mutant:
    """One change to the module's source: ``text`` replaces the characters [start, end)."""

    function: str
    line: int
    operator: str
    start: int
    end: int
    text: str
    original: str

    def apply(self, source: str) -> str:
        return source[: self.start] + self.text + source[self.end :]

    def describe(self) -> str:
        return f"{self.operator}: `{_one_line(self.original)}` → `{_one_line(self.text)}`"


def _one_line(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class _Offsets:
    """(line, column) → character offset; ast's columns count UTF-8 bytes."""

    def __init__(self, source: str) -> None:
        self.lines = source.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def at(self, line: int, col: int) -> int:
        text = self.lines[line - 1]
        return self.starts[line - 1] + len(text.encode("utf-8")[:col].decode("utf-8"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (self.at(node.lineno, node.col_offset),  # type: ignore[attr-defined]
                self.at(node.end_lineno, node.end_col_offset))  # type: ignore[attr-defined]


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method with its qualified name (nested functions count as their own)."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                yield name, child
                yield from walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def _body_nodes(function: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    """The nodes of a function's own body: not nested functions or classes, not annotations,
    not inside f-strings (whose positions Python 3.11 does not report reliably)."""
    stack: list[ast.AST] = list(reversed(function.body))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.JoinedStr):
            continue
        yield node
        children = [c for c in ast.iter_child_nodes(node)
                    if not (isinstance(node, ast.AnnAssign) and c is node.annotation)]
        stack.extend(reversed(children))


def mutants_of(source: str) -> list[Mutant]:
    """Every mutant of ``source``, in source order."""
    tree = ast.parse(source)
    offsets = _Offsets(source)
    found: list[Mutant] = []

    def add(function: str, node: ast.AST, operator: str, text: str, target: ast.AST | None = None) -> None:
        where = target or node
        start, end = offsets.span(where)
        found.append(Mutant(function, where.lineno, operator, start, end, text,  # type: ignore[attr-defined]
                            source[start:end]))

    for name, function in _functions(tree):
        docstring = ast.get_docstring(function, clean=False) is not None
        for node in _body_nodes(function):
            if docstring and node is function.body[0]:
                continue
            if isinstance(node, ast.Compare):
                for i, op in enumerate(node.ops):
                    flipped = _FLIP.get(type(op))
                    if flipped is not None:
                        ops = [*node.ops[:i], flipped(), *node.ops[i + 1 :]]
                        add(name, node, "comparison flipped",
                            ast.unparse(ast.Compare(node.left, ops, node.comparators)))
            elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
                value: float = node.value  # type: ignore[assignment]  # an int or a float, not a bool
                for delta in (1, -1):
                    add(name, node, f"constant {'+' if delta > 0 else '-'}1", repr(value + delta))
            elif isinstance(node, ast.BoolOp):
                swapped = ast.Or() if isinstance(node.op, ast.And) else ast.And()
                add(name, node, "and/or swapped", ast.unparse(ast.BoolOp(swapped, node.values)))
            elif isinstance(node, ast.If | ast.While | ast.IfExp):
                test = node.test
                # A lone flippable comparison is negated by its flip already: one mutant, not two.
                if not (isinstance(test, ast.Compare) and len(test.ops) == 1
                        and type(test.ops[0]) in _FLIP):
                    add(name, node, "condition negated", f"not ({ast.unparse(test)})", target=test)
            elif isinstance(node, ast.Raise):
                add(name, node, "raise → pass", "pass")
            elif isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None
            ):
                add(name, node, "return → None", "None", target=node.value)
    return found


def sample(mutants: list[Mutant], count: int, seed: int) -> list[Mutant]:
    """``count`` mutants evenly over their functions: round-robin, each function's in a seeded order."""
    rng = random.Random(seed)
    by_function: dict[str, list[Mutant]] = {}
    for mutant in mutants:
        by_function.setdefault(mutant.function, []).append(mutant)
    for group in by_function.values():
        rng.shuffle(group)
    chosen: list[Mutant] = []
    while len(chosen) < count and any(by_function.values()):
        for group in by_function.values():
            if group and len(chosen) < count:
                chosen.append(group.pop())
    return sorted(chosen, key=lambda m: (m.start, m.operator, m.text))


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    # "killed", "timeout" (counted as killed), "killed-wider" (only by the --then tests),
    # "survived", "invalid" (not counted)
    status: str
    seconds: float
    failed: str = ""  # the first failing test, for a killed mutant


def _copy_repository(into: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _run_tests(copy: Path, tests: list[str], env: dict[str, str], timeout: float) -> tuple[str, float, str]:
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header",
         "-o", "addopts=", *tests],
        cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return "timeout", time.monotonic() - started, ""
    seconds = time.monotonic() - started
    text = output.decode("utf-8", "replace")
    failed = next((line.split(" ", 1)[1] for line in text.splitlines() if line.startswith("FAILED ")), "")
    return ("survived" if process.returncode == 0 else "killed"), seconds, failed


def run(module: Path, tests: list[str], mutants: list[Mutant], timeout: float | None,
        then: list[str] | None = None, log: bool = True) -> tuple[list[Outcome], float]:
    """Run every mutant; return the outcomes and the unmutated run's seconds. With ``then``, a
    survivor runs again against those (wider) tests, and is killed if they notice it."""
    relative = module.resolve().relative_to(ROOT)
    source = module.read_text(encoding="utf-8")
    with ExitStack() as stack:
        copy = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="catalog-mutate-")))
        _copy_repository(copy)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        if not env.get("TEST_DATABASE_URL"):
            sys.path.insert(0, str(ROOT))
            from tests import fixtures_db

            choice = fixtures_db.choose(os.environ)
            env["TEST_DATABASE_URL"] = stack.enter_context(fixtures_db.start(choice, os.environ))
        status, baseline, failed = _run_tests(copy, tests, env, timeout or 3600)
        if status != "survived":
            raise SystemExit(f"the tests fail without any mutant ({status}: {failed or 'see pytest'})")
        limit = timeout or max(60.0, 4 * baseline)
        target = copy / relative
        outcomes = []
        for n, mutant in enumerate(mutants, 1):
            mutated = mutant.apply(source)
            try:
                compile(mutated, str(relative), "exec")
            except SyntaxError:
                outcomes.append(Outcome(mutant, "invalid", 0.0))
                continue
            target.write_text(mutated, encoding="utf-8")
            try:
                status, seconds, failed = _run_tests(copy, tests, env, limit)
                if status == "survived" and then:
                    status, more, failed = _run_tests(copy, then, env, limit * 10)
                    status = {"killed": "killed-wider", "timeout": "killed-wider"}.get(status, status)
                    seconds += more
            finally:
                target.write_text(source, encoding="utf-8")
            outcomes.append(Outcome(mutant, status, seconds, failed))
            if log:
                print(f"[{n}/{len(mutants)}] {status:8} {relative}:{mutant.line} {mutant.function}: "
                      f"{mutant.describe()}", file=sys.stderr, flush=True)
    return outcomes, baseline


def report(module: str, tests: list[str], outcomes: list[Outcome], baseline: float, total: int,
           wall: float) -> str:
    counted = [o for o in outcomes if o.status != "invalid"]
    killed = [o for o in counted if o.status in ("killed", "timeout")]
    wider = [o for o in counted if o.status == "killed-wider"]
    survived = [o for o in counted if o.status == "survived"]
    score = 100 * len(killed) / len(counted) if counted else 0.0
    lines = [
        f"## `{module}` against {' '.join(f'`{t}`' for t in tests)}",
        "",
        f"{len(counted)} mutants run (of {total} possible; {len(outcomes) - len(counted)} invalid), "
        f"{len(killed)} killed by these tests ({sum(o.status == 'timeout' for o in counted)} by "
        f"timeout), {len(wider)} more by the wider tests, {len(survived)} survived: "
        f"**{score:.1f} %** killed by the module's tests"
        + (f", {100 * (len(killed) + len(wider)) / len(counted):.1f} % with the wider ones" if wider else "")
        + f". Unmutated tests: {baseline:.1f} s; the whole run: {wall / 60:.1f} min.",
        "",
    ]
    if wider:
        lines += ["Killed only by the wider tests:", ""]
        lines += [f"- line {o.mutant.line}, `{o.mutant.function}`: {o.mutant.describe()} ({o.failed})"
                  for o in wider]
        lines.append("")
    if survived:
        lines += ["| line | function | mutant |", "| --- | --- | --- |"]
        lines += [f"| {o.mutant.line} | `{o.mutant.function}` | {o.mutant.describe()} |" for o in survived]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("module", type=Path)
    parser.add_argument("tests", nargs="+", help="the test files or folders that should kill the mutants")
    parser.add_argument("--functions", default="*", help="comma-separated globs of (Class.)function names")
    parser.add_argument("--sample", type=int, default=40, help="how many mutants (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per mutant (default: 4 × the unmutated run, at least 60)")
    parser.add_argument("--then", nargs="+", default=None,
                        help="wider tests a survivor runs against before it counts as survived")
    parser.add_argument("--only", default="",
                        help="comma-separated positions in the sample (as numbered in a run's log, "
                             "from 1): run just these, e.g. an earlier run's survivors after new tests")
    parser.add_argument("--list", action="store_true", help="list the sampled mutants, run nothing")
    parser.add_argument("--out", type=Path, help="append the Markdown report to this file")
    args = parser.parse_args()

    source = args.module.read_text(encoding="utf-8")
    patterns = [p.strip() for p in args.functions.split(",") if p.strip()]
    every = [m for m in mutants_of(source) if any(fnmatch.fnmatchcase(m.function, p) for p in patterns)]
    if not every:
        raise SystemExit(f"no mutants in {args.module} for functions {args.functions!r}")
    chosen = sample(every, args.sample, args.seed) if args.sample else every
    if args.only:
        # The same sample (same module, functions, size and seed), cut down to these positions.
        positions = [int(p) for p in args.only.split(",") if p.strip()]
        if any(not 1 <= p <= len(chosen) for p in positions):
            raise SystemExit(f"--only: positions run from 1 to {len(chosen)}")
        chosen = [chosen[p - 1] for p in positions]
    if args.list:
        for mutant in chosen:
            print(f"{args.module}:{mutant.line} {mutant.function}: {mutant.describe()}")
        return
    started = time.monotonic()
    outcomes, baseline = run(args.module, args.tests, chosen, args.timeout, args.then)
    text = report(str(args.module), args.tests, outcomes, baseline, len(every), time.monotonic() - started)
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
