"""
callLater on the native queue keeps Twisted's rules. These pass on Twisted's
own reactors too (trial --reactor=epoll), except the scheduling order of
equal deadlines, which Torque guarantees and Twisted's heap does not.
"""

from twisted.internet import defer, reactor
from twisted.trial import unittest

from ._support import notTorque


def _later(seconds):
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


class CallLaterTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_equalDeadlinesInSchedulingOrder(self):
        """
        Calls due at the same time run in the order they were scheduled.
        """
        if notTorque:
            raise unittest.SkipTest("Twisted's own heap does not promise this")
        ran = []
        now = reactor.seconds()
        calls = [reactor.callLater(0, ran.append, i) for i in range(200)]
        for call in calls:
            call.time = now
        yield _later(0.01)
        self.assertEqual(ran, list(range(200)))

    @defer.inlineCallbacks
    def test_scheduledByADueCallWaitsAPass(self):
        """
        A zero-delay call made by a running timed call runs on a later pass,
        not in the same run of due calls (Twisted's rule).
        """
        order = []

        def first():
            order.append("first")
            reactor.callLater(0, order.append, "scheduled by first")
            order.append("first done")

        reactor.callLater(0, first)
        reactor.callLater(0, order.append, "second")
        yield _later(0.05)
        self.assertEqual(order, ["first", "first done", "second", "scheduled by first"])

    @defer.inlineCallbacks
    def test_resetDelayAndCancel(self):
        """
        reset brings a call forward or pushes it back, delay postpones it,
        cancel removes it; getDelayedCalls lists only live calls.
        """
        ran = []
        sooner = reactor.callLater(30, ran.append, "sooner")
        later = reactor.callLater(0, ran.append, "later")
        delayed = reactor.callLater(0, ran.append, "delayed")
        cancelled = reactor.callLater(0, ran.append, "cancelled")
        sooner.reset(0.01)
        later.reset(0.05)
        delayed.delay(0.03)
        cancelled.cancel()
        live = reactor.getDelayedCalls()
        for call in (sooner, later, delayed):
            self.assertIn(call, live)
        self.assertNotIn(cancelled, live)
        self.assertEqual(len([c for c in live if c in (sooner, later, delayed)]), 3)
        yield _later(0.2)
        self.assertEqual(ran, ["sooner", "delayed", "later"])
        self.assertFalse(sooner.active())

    @defer.inlineCallbacks
    def test_manyCancellations(self):
        """
        Thousands of cancelled calls are swept out; the live ones still run.
        """
        ran = []
        keep = [reactor.callLater(0.01 * (i % 3), ran.append, i) for i in range(100)]
        for _ in range(5):
            for call in [reactor.callLater(60, ran.append, "never") for _ in range(1000)]:
                call.cancel()
            yield _later(0)
        yield _later(0.1)
        self.assertEqual(sorted(ran), list(range(100)))
        self.assertFalse(any(c.active() for c in keep))
        mine = [c for c in reactor.getDelayedCalls() if c.func == ran.append]
        self.assertEqual(mine, [])

    @defer.inlineCallbacks
    def test_exceptionIsLoggedAndOthersRun(self):
        """
        A timed call that raises is logged through Twisted's logging; the
        calls after it still run.
        """
        ran = []
        reactor.callLater(0, lambda: 1 / 0)
        reactor.callLater(0, ran.append, "after")
        yield _later(0.05)
        self.assertEqual(ran, ["after"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class ThreadWakeTests(unittest.TestCase):
    # Trial's timeout is the next timer: a lost wake waits for it.
    timeout = 60

    @defer.inlineCallbacks
    def test_callFromThreadWakesTheWait(self):
        """
        callFromThread from another thread ends the reactor's wait at once,
        though nothing else is due for a long time (trial's own timeout is
        the next timer). The bound is loose: it fails only if the wake is
        lost and the wait runs on.
        """
        import threading
        import time

        long = reactor.callLater(300, lambda: None)
        self.addCleanup(long.cancel)
        arrived = defer.Deferred()
        started = time.monotonic()

        def worker():
            time.sleep(0.05)
            reactor.callFromThread(arrived.callback, time.monotonic())

        threading.Thread(target=worker).start()
        when = yield arrived
        self.assertLess(when - started, 30)
        self.assertLess(time.monotonic() - started, 30)
