"""Start many real worker processes at once, cheaply: import the worker once, then fork a child per
environment, each running ``worker.router.main([TASK])`` with its output in its own file.

``python -m tests.worker.fork_workers SPEC.json`` where SPEC is ``{"task": …, "children": [{"env":
{…}, "log": path}, …]}``; prints one JSON object: each child's exit code, in order. Run it as its
own process (never forked from pytest, whose threads make fork unsafe).
"""

from __future__ import annotations

import json
import os
import sys


def main(spec_path: str) -> int:
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    from worker import router  # imported once, before the fork: the children share it

    pids = []
    for child in spec["children"]:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                fd = os.open(child["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.environ.clear()
                os.environ.update(child["env"])
                code = router.main([spec["task"]])
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)
    codes = []
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        codes.append(os.waitstatus_to_exitcode(status))
    print(json.dumps({"exit_codes": codes}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
