#!/usr/bin/env bash
# The Python SDK's unittest suite (sdk/python/tests) against a real silod; TAP.
# Also: `pip install` of sdk/python into a fresh venv, offline (no index).
HERE=$(cd "$(dirname "$0")" && pwd)
exec bash "$HERE/run.sh" bash -c '
set -u
python3 "$SILO_SOURCE_ROOT/sdk/python/tests/test_silo.py" | tee "$SILO_TEST_TMP/py.tap" | grep -v "^1\.\."
rc=${PIPESTATUS[0]}
n=$(grep -cE "^(not )?ok " "$SILO_TEST_TMP/py.tap")
python3 -m venv "$SILO_TEST_TMP/venv" &&
	"$SILO_TEST_TMP/venv/bin/pip" install -q --no-index "$SILO_SOURCE_ROOT/sdk/python" > "$SILO_TEST_TMP/pip.log" 2>&1 &&
	(cd / && "$SILO_TEST_TMP/venv/bin/python" -c "import silo, sys; c = silo.Client(); sb = c.create(provider=\"namespace\"); r = sb.exec([\"sh\",\"-c\",\"echo hi\"]); assert r.stdout == \"hi\\n\" and r.exit_code == 0; sb.files.write(\"/tmp/x\", b\"1\"); assert sb.files.read(\"/tmp/x\") == b\"1\"; sb.delete(); assert silo.__file__.startswith(sys.prefix)")
pip_rc=$?
n=$((n + 1))
if PYTHONPATH="$SILO_SOURCE_ROOT/sdk/python" python3 "$SILO_SOURCE_ROOT/examples/sdk/agent.py" > "$SILO_TEST_TMP/ex.out" 2>&1 &&
	grep -q "^result {" "$SILO_TEST_TMP/ex.out"; then echo "ok $n - examples/sdk/agent.py runs"
else echo "not ok $n - examples/sdk/agent.py"; sed "s/^/# /" "$SILO_TEST_TMP/ex.out"; rc=1; fi
n=$((n + 1))
if [ $pip_rc = 0 ]; then echo "ok $n - pip install --no-index ./sdk/python into a venv; the minimal shape runs from it"
else echo "not ok $n - pip install --no-index ./sdk/python"; sed "s/^/# /" "$SILO_TEST_TMP/pip.log"; rc=1; fi
echo "1..$n"
exit $rc
'
