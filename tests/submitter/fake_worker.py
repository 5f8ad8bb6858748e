"""A tiny stand-in for ``python -m worker TASK``: records what it saw, exits as its script says.

FAKE_SCRIPT (JSON): {"collect": {"1": [75, 0]}} — position 1's collect exits 75, then 0 on attempt 2.
Every start and end is appended, one JSON line each, to FAKE_RECORD.
"""

import json
import os
import sys
import time

task = sys.argv[1]
env = os.environ
position = int(env.get("SHOP_INDEX_OFFSET", "0")) + int(env.get("AWS_BATCH_JOB_ARRAY_INDEX", "0"))
attempt = int(env["AWS_BATCH_JOB_ATTEMPT"])
codes = json.loads(env.get("FAKE_SCRIPT", "{}")).get(task, {}).get(str(position), [0])
code = codes[min(attempt, len(codes)) - 1]
seen = {k: v for k, v in env.items() if k.startswith(("AWS_BATCH_", "RUN_ID", "SHOP_INDEX", "DATABASE"))}


def record(event: str) -> None:
    line = json.dumps({"event": event, "task": task, "position": position, "attempt": attempt,
                       "env": seen, "code": code}) + "\n"
    fd = os.open(env["FAKE_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, line.encode())
    os.close(fd)


record("start")
time.sleep(float(env.get("FAKE_SLEEP", "0")))
if code:
    print(json.dumps({"event": "task.failed", "error": f"{task} of position {position} failed\n"
                      "second line"}))
print(json.dumps({"event": "task.summary", "code": code}))
record("end")
sys.exit(code)
