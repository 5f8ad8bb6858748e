"""The local executor: a run's plan on this machine, with AWS Batch's semantics.

Each array child is a ``python -m worker TASK`` process (or ``docker run IMAGE TASK``) with exactly
the environment Batch would give it, and runs its bundle: one shop, or several small ones.
``N_TO_N`` is honoured per index: feed *i* starts the moment collect *i* succeeds; when collect *i*
fails, feed *i* and images *i* fail without running and every other index goes on. The job
definition's retry strategy applies: exit 75 is retried up to the attempts, 65 and 1 are not. At
most ``parallel`` children run at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg
import structlog

from submitter.config import SubmitterConfig
from submitter.plan import Plan, PlannedJob, bundle_members
from worker.common.errors import EXIT_TEMPFAIL, ConfigError
from worker.common.settings import TASKS

log = structlog.get_logger(__name__)

WAITING, RUNNING, SUCCEEDED, FAILED, DEPENDENCY_FAILED = 0, 1, 2, 3, 4
EXIT_SOME_FAILED = 2
MAX_FAILURES_DETAILED = 50


@dataclass(frozen=True)
class RetryStrategy:
    """The job definition's ``retryStrategy``: attempts, and the exit codes that RETRY."""

    attempts: int = 3
    retry_exit_codes: frozenset[int] = frozenset({EXIT_TEMPFAIL})

    def __post_init__(self) -> None:
        if not 1 <= self.attempts <= 10:
            raise ConfigError(f"attempts={self.attempts}: AWS Batch allows 1 to 10 attempts")


@dataclass(frozen=True)
class Failure:
    task: str
    position: int  # in the run's frozen list (offset + index)
    exit_code: int | None  # None: not run, its dependency failed
    attempts: int
    log_path: Path | None
    last_line: str | None


@dataclass
class Progress:
    """Per task: succeeded, failed, running, waiting (a failed dependency counts as failed)."""

    counts: dict[str, Counter[str]]
    done: bool = False


@dataclass
class LocalSummary:
    run_id: str
    counts: dict[str, Counter[str]]
    failures: list[Failure] = field(default_factory=list)
    failure_count: int = 0
    attempts: int = 0  # processes started, retries included
    duration_s: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_SOME_FAILED if self.failure_count else 0


BATCH_VARIABLES = (
    "AWS_BATCH_JOB_ID", "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE",
    "AWS_BATCH_JOB_ATTEMPT", "RUN_ID", "SHOP_INDEX_OFFSET",
)
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def local_base_env(config: SubmitterConfig, database_url: str) -> dict[str, str]:
    """What every local child gets besides Batch's variables: the worker's settings, and this
    project importable so that ``python -m worker`` runs the same code as the submitter."""
    env = dict(config.inherited)
    env["DATABASE_URL"] = database_url
    # The children's logs go to files: one JSON event per line, as in CloudWatch.
    env["LOG_FORMAT"] = config.log_format or "json"
    for name, value in (("OUTPUT_URL", config.output_url),
                        ("FETCH_ALLOW_NETWORKS", config.fetch_allow_networks),
                        ("AWS_ENDPOINT_URL", config.aws_endpoint_url)):
        if value:
            env[name] = value
    paths = [str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def child_labels(conn: psycopg.Connection, run_id: str, positions: Iterable[int]) -> dict[int, str]:
    """child position → its shops in a few words, for the few children a summary names."""
    from submitter.report import bundle_label

    return {child: bundle_label(shops) for child, shops in bundle_members(conn, run_id, positions)}


def worker_command() -> tuple[str, ...]:
    """This interpreter's ``python -m worker``: the image's entrypoint, without the image."""
    return (sys.executable, "-m", "worker")


def docker_command(image: str, env_names: Iterable[str]) -> tuple[str, ...]:
    """``docker run`` of the image with the named variables passed through from the child's env.

    ``--init``, as the job definition's ``InitProcessEnabled``: the worker is not PID 1, so a
    SIGTERM (the executor's, or Batch's) reaches its handler."""
    args = ["docker", "run", "--rm", "--init", "--network", "host"]
    for name in sorted(set(env_names)):
        args += ["-e", name]  # the value comes from the docker process's own environment
    return (*args, image)


class _Job:
    """One planned job's children: a state and an attempt count per index, in two bytearrays."""

    def __init__(self, job: PlannedJob) -> None:
        self.planned = job
        self.size = job.array_size or 1
        self.state = bytearray(self.size)
        self.attempts = bytearray(self.size)
        self.parent_id = str(uuid.uuid4())
        self.dependents: list[tuple[_Job, str | None]] = []
        self.parents: list[tuple[_Job, str | None]] = []
        self.next_root = 0  # for a job without parents: the next index never started
        self.succeeded = 0


@dataclass
class _Child:
    job: _Job
    index: int
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]


class LocalExecutor:
    """Run a plan's jobs as local processes; ``run()`` returns the summary (never raises on a
    child's failure: failures are the summary's business)."""

    def __init__(
        self,
        plan: Plan,
        *,
        base_env: Mapping[str, str],
        log_dir: Path,
        command: Sequence[str] | None = None,
        parallel: int | None = None,
        retry: RetryStrategy = RetryStrategy(),
        progress: Callable[[Progress], None] | None = None,
        poll_interval: float = 0.02,
    ) -> None:
        if parallel is not None and parallel < 1:
            raise ConfigError(f"--parallel {parallel}: run at least one child at a time")
        self.plan = plan
        self.base_env = dict(base_env)
        self.log_dir = log_dir
        self.command = tuple(command) if command is not None else worker_command()
        self.parallel = parallel or os.cpu_count() or 1
        self.retry = retry
        self.progress = progress
        self.poll_interval = poll_interval
        self.jobs = [_Job(job) for job in plan.jobs]
        by_key = {job.planned.key: job for job in self.jobs}
        for job in self.jobs:
            for dep in job.planned.depends_on:
                parent = by_key[dep.key]
                job.parents.append((parent, dep.type))
                parent.dependents.append((job, dep.type))
        self.counts: dict[str, Counter[str]] = {task: Counter() for task in TASKS}
        for job in self.jobs:
            self.counts[job.planned.task]["waiting"] += job.size
        self.ready: deque[tuple[_Job, int]] = deque()
        self.running: list[_Child] = []
        self.summary = LocalSummary(plan.run_id, self.counts)

    # -- the environment Batch gives a child ------------------------------------------------

    def child_env(self, job: _Job, index: int, attempt: int) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(job.planned.environment)
        if job.planned.array_size is not None:
            env["AWS_BATCH_JOB_ID"] = f"{job.parent_id}:{index}"
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
            env["AWS_BATCH_JOB_ARRAY_SIZE"] = str(job.size)
        else:
            env["AWS_BATCH_JOB_ID"] = job.parent_id
            env.pop("AWS_BATCH_JOB_ARRAY_INDEX", None)
            env.pop("AWS_BATCH_JOB_ARRAY_SIZE", None)
        env["AWS_BATCH_JOB_ATTEMPT"] = str(attempt)
        return env

    # -- scheduling ------------------------------------------------------------------------------

    def _move(self, job: _Job, frm: str, to: str) -> None:
        self.counts[job.planned.task][frm] -= 1
        self.counts[job.planned.task][to] += 1

    def _next_unit(self) -> tuple[_Job, int] | None:
        # Dependents first: a shop's feed follows its collect before more collects start.
        if self.ready:
            return self.ready.popleft()
        for job in self.jobs:
            if not job.parents and job.next_root < job.size:
                index = job.next_root
                job.next_root += 1
                return job, index
        return None

    def _deps_met(self, job: _Job, index: int) -> bool:
        for parent, kind in job.parents:
            if kind == "N_TO_N":
                if parent.state[index] != SUCCEEDED:
                    return False
            elif parent.succeeded != parent.size:
                return False
        return True

    def _start(self, job: _Job, index: int) -> None:
        job.attempts[index] += 1
        attempt = job.attempts[index]
        position = job.planned.chunk.offset + index
        folder = self.log_dir / self.plan.run_id
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / f"{job.planned.task}-{position:05d}-attempt{attempt}.log"
        log_file = log_path.open("wb")
        try:
            process = subprocess.Popen(
                [*self.command, job.planned.task],
                env=self.child_env(job, index, attempt),
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            log_file.close()
            raise ConfigError(
                f"cannot start the worker command {' '.join(self.command)!r}: {exc.strerror}"
            ) from exc
        if attempt == 1:
            self._move(job, "waiting", "running")
        else:
            self._move(job, "retrying", "running")
        job.state[index] = RUNNING
        self.summary.attempts += 1
        self.running.append(_Child(job, index, process, log_path, log_file))

    def _finished(self, child: _Child, code: int) -> None:
        job, index = child.job, child.index
        child.log_file.close()
        attempt = job.attempts[index]
        if code == 0:
            job.state[index] = SUCCEEDED
            job.succeeded += 1
            self._move(job, "running", "succeeded")
            for dependent, kind in job.dependents:
                targets = [index] if kind == "N_TO_N" else (
                    range(dependent.size) if job.succeeded == job.size else []
                )
                for target in targets:
                    if dependent.state[target] == WAITING and self._deps_met(dependent, target):
                        self.ready.append((dependent, target))
            return
        if code in self.retry.retry_exit_codes and attempt < self.retry.attempts:
            log.info("local.retry", task=job.planned.task, index=index, attempt=attempt,
                     exit_code=code)
            job.state[index] = WAITING
            self._move(job, "running", "retrying")
            self.ready.append((job, index))
            return
        job.state[index] = FAILED
        self._move(job, "running", "failed")
        self._record_failure(job, index, code, child.log_path)
        self._fail_dependents(job, index)

    def _fail_dependents(self, job: _Job, index: int) -> None:
        stack = [(job, index)]
        while stack:
            parent, i = stack.pop()
            for dependent, kind in parent.dependents:
                targets = [i] if kind == "N_TO_N" else range(dependent.size)
                for target in targets:
                    if dependent.state[target] == WAITING:
                        dependent.state[target] = DEPENDENCY_FAILED
                        self._move(dependent, "waiting", "failed")
                        self._record_failure(dependent, target, None, None)
                        stack.append((dependent, target))

    def _record_failure(self, job: _Job, index: int, code: int | None, path: Path | None) -> None:
        self.summary.failure_count += 1
        if len(self.summary.failures) < MAX_FAILURES_DETAILED:
            self.summary.failures.append(Failure(
                task=job.planned.task, position=job.planned.chunk.offset + index, exit_code=code,
                attempts=job.attempts[index], log_path=path,
                last_line=_last_line(path) if path else None,
            ))

    def _report(self, done: bool = False) -> None:
        if self.progress is not None:
            self.progress(Progress(self.counts, done))

    def run(self) -> LocalSummary:
        """Run every child to its end; return the summary."""
        started = time.monotonic()
        self._report()
        try:
            while True:
                while len(self.running) < self.parallel:
                    unit = self._next_unit()
                    if unit is None:
                        break
                    self._start(*unit)
                    self._report()
                if not self.running:
                    break
                time.sleep(self.poll_interval)
                still: list[_Child] = []
                changed = False
                for child in self.running:
                    code = child.process.poll()
                    if code is None:
                        still.append(child)
                    else:
                        self._finished(child, code)
                        changed = True
                self.running = still
                if changed:
                    self._report()
        except BaseException:
            # Interrupted: stop only the children this executor started, then let it through.
            for child in self.running:
                child.process.terminate()
            for child in self.running:
                try:
                    child.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                child.log_file.close()
            raise
        self.summary.duration_s = time.monotonic() - started
        self._report(done=True)
        return self.summary


def _last_line(path: Path, limit: int = 300) -> str | None:
    """What a child said last about its failure: the last JSON event's ``error``, else its last
    non-empty line (a traceback's last line, a usage message)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = [line for line in tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("error"):
                return str(event["error"]).splitlines()[0][:limit]
    return lines[-1][:limit] if lines else None
