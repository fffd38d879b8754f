# SPDX-License-Identifier: Apache-2.0
"""unittest results as TAP (the project's test protocol, tests/harness.h)."""
import sys
import unittest


class TapResult(unittest.TestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.n = 0

    def _line(self, ok, test, extra=""):
        self.n += 1
        print("%s %d - %s%s" % ("ok" if ok else "not ok", self.n, test.id().split(".", 1)[-1], extra), flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._line(True, test)

    def _fail(self, test, err, kind):
        self._line(False, test)
        for l in self._exc_info_to_string(err, test).splitlines():
            print("# " + l)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test, err, "failure")

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(test, err, "error")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(True, test, " # SKIP " + reason)


def main(module="__main__"):
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[module])
    r = TapResult()
    suite.run(r)
    print("1..%d" % r.n)
    sys.exit(0 if r.wasSuccessful() else 1)
