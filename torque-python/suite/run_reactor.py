"""
Run Twisted's reactor tests on one reactor and write each test's outcome as JSON.

    python run_reactor.py --reactor torque --out torque.json MODULE...

Twisted's ReactorBuilder suites pick their reactors from a fixed list, not from
--reactor: the list is replaced here, before any test module is imported, by
the one reactor under test. The other tests use the global reactor, which is
installed here too. Each reactor runs in its own process.
"""

import argparse
import json
import os
import sys
import time

REACTORS = {
    "torque": ("torque_twisted.TorqueReactor", "torque_twisted"),
    "epoll": ("twisted.internet.epollreactor.EPollReactor", "twisted.internet.epollreactor"),
    "poll": ("twisted.internet.pollreactor.PollReactor", "twisted.internet.pollreactor"),
    "select": ("twisted.internet.selectreactor.SelectReactor", "twisted.internet.selectreactor"),
}

# Tests Twisted skips for its epoll reactor by name, for a reason that holds for
# Torque's epoll and io_uring backends too. Left to run, each waits out its
# timeout. (On TORQUE_REACTOR=poll they run.)
SKIP_ON_EPOLL_LIKE = {
    "test_fdset.ReactorFDSetTestsBuilder_TorqueReactorTests.test_lostFileDescriptor": (
        "an fd closed and replaced while registered leaves epoll without an event"
        " (Twisted skips this test for EPollReactor for the same reason)"
    ),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reactor", required=True, choices=sorted(REACTORS))
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per test")
    parser.add_argument("modules", nargs="+")
    args = parser.parse_args()

    builder_class, module = REACTORS[args.reactor]
    from twisted.internet.test.reactormixins import ReactorBuilder

    ReactorBuilder._reactors[:] = [builder_class]
    __import__(module, fromlist=["install"]).install()

    from twisted.trial import reporter, runner, util

    util.DEFAULT_TIMEOUT_DURATION = args.timeout

    outcomes = {}

    class Recorder(reporter.Reporter):
        started = {}

        def startTest(self, test):
            super().startTest(test)
            self.started[test.id()] = time.monotonic()

        def _record(self, test, outcome, detail=""):
            took = time.monotonic() - self.started.get(test.id(), time.monotonic())
            outcomes[test.id()] = [outcome, str(detail)[-2000:], round(took, 3)]

        def addSuccess(self, test):
            super().addSuccess(test)
            self._record(test, "pass")

        def addFailure(self, test, fail):
            super().addFailure(test, fail)
            self._record(test, "fail", _describe(fail))

        def addError(self, test, error):
            super().addError(test, error)
            self._record(test, "error", _describe(error))

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            self._record(test, "skip", reason)

        def addExpectedFailure(self, test, failure, todo=None):
            super().addExpectedFailure(test, failure, todo)
            self._record(test, "xfail")

        def addUnexpectedSuccess(self, test, todo=None):
            super().addUnexpectedSuccess(test, todo)
            self._record(test, "xpass")

    started = time.monotonic()
    loader = runner.TestLoader()
    suite = loader.loadByNames(args.modules, recurse=False)
    if args.reactor == "torque":
        from twisted.internet import reactor

        if reactor.torqueBackend in ("epoll", "io_uring"):
            from twisted.trial._asyncrunner import _iterateTests

            for test in _iterateTests(suite):
                for name, reason in SKIP_ON_EPOLL_LIKE.items():
                    if test.id().endswith(name):
                        test.skip = reason
    work = os.path.join(os.path.dirname(os.path.abspath(args.out)), "_trial_temp_" + args.reactor)
    trial = runner.TrialRunner(Recorder, workingDirectory=work, stream=open(os.devnull, "w"))
    trial.run(suite)
    with open(args.out, "w") as f:
        json.dump({"reactor": args.reactor, "seconds": time.monotonic() - started, "tests": outcomes}, f)
    print(f"{args.reactor}: {len(outcomes)} tests in {time.monotonic() - started:.1f} s", file=sys.stderr)


def _describe(failure):
    try:
        return failure.getTraceback()
    except Exception:
        return repr(failure)


if __name__ == "__main__":
    main()
