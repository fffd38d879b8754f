#!/usr/bin/env python3
"""Count TAP cases across meson's testlog.json (and more JSON-lines logs of the same shape); print 'N passed, N failed, N skipped'.

A test binary that crashed before printing its plan counts as one failure,
as does a plan whose cases did not all report."""
import json, re, sys

passed = failed = skipped = 0
bad = []
def records(paths):
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

for t in records(sys.argv[1:]):
    out = t.get("stdout") or ""
    plan = None
    seen = 0
    p = f_ = s = 0
    for l in out.splitlines():
        m = re.match(r"^1\.\.(\d+)", l)
        if m:
            plan = int(m.group(1))
            continue
        m = re.match(r"^(not ok|ok)\b(.*)$", l)
        if not m:
            continue
        seen += 1
        rest = m.group(2)
        if re.search(r"#\s*SKIP", rest, re.I):
            s += 1
        elif m.group(1) == "ok":
            p += 1
        else:
            f_ += 1
            bad.append(f"{t['name']}:{rest.strip()}")
    if t.get("result") in ("FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS") and f_ == 0:
        f_ += 1
        bad.append(f"{t['name']}: {t.get('result')}")
    elif plan is not None and seen < plan:
        f_ += plan - seen
        bad.append(f"{t['name']}: {plan - seen} planned cases did not report")
    elif plan is None and seen == 0:
        if t.get("result") == "SKIP":
            s += 1
        elif t.get("result") == "OK":
            p += 1
    passed += p; failed += f_; skipped += s
for b in bad:
    print(f"FAILED: {b}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
