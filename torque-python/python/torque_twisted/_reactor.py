"""
L{TorqueReactor}: Twisted's C{PosixReactorBase} over Torque's native core.

The core (Rust) owns the wait and the fd set, reads Twisted's own TCP and
UNIX stream connections itself (straight into C{dataReceived}) and sends
their writes at once when nothing is queued. Everything else — ports, connectors, buffering,
producers, UDP, UNIX sockets, TLS, processes — is Twisted's own code, run
over it.
"""

from builtins import callable as builtins_callable

from zope.interface import implementer

from twisted.internet import base, error, main, posixbase, tcp, unix
from twisted.internet.interfaces import IReactorFDSet
from twisted.python import context, failure, log

from . import _core

# Twisted's writes for stream connections: they buffer, and know TLS.
_bufferedWrite = tcp.Connection.write
_bufferedWriteSequence = tcp.Connection.writeSequence


def _threadCallFailed():
    """
    Log the exception a call from a thread raised, as Twisted's
    runUntilCurrent does (its handler where it has one).
    """
    handler = getattr(base, "_threadCallHandler", None)
    if handler is None:
        log.err()
        return
    exception = failure.Failure().value
    with handler:
        raise exception


def _readsNatively(cls):
    """
    How the core reads instances of C{cls}: 1 for Twisted's stock
    C{tcp.Connection.doRead} (C{read(2)}), 2 for its UNIX
    C{_SendmsgMixin.doRead} (C{recvmsg(2)}, passed descriptors first), 0 when
    the class reads its own way (then its C{doRead} is called).
    """
    if not issubclass(cls, tcp.Connection) or cls._dataReceived is not tcp.Connection._dataReceived:
        return 0
    if cls.doRead is tcp.Connection.doRead:
        return 1
    if cls.doRead is unix._SendmsgMixin.doRead:
        return 2
    return 0


class _SendsAtOnce:
    """
    Twisted's C{write} and C{writeSequence}, with bytes for an idle
    connection sent at once (by the core) instead of on the next pass.
    """

    def write(self, data):
        self.reactor._core.write(self, data)

    def writeSequence(self, iovec):
        self.reactor._core.write_sequence(self, iovec)

    def registerProducer(self, producer, streaming):
        tcp.Connection.registerProducer(self, producer, streaming)
        if not streaming and self.producer is producer and self.reactor._core.sent_this_pass(self):
            # Twisted would flush that write on the next pass, then ask the
            # pull producer for more: so will this.
            self.startWriting()


class TorqueServer(_SendsAtOnce, tcp.Server):
    """
    A server-side TCP connection: Twisted's, with writes sent at once.
    """


class TorqueClient(_SendsAtOnce, tcp.Client):
    """
    A client-side TCP connection: Twisted's, with writes sent at once.
    """


class TorquePort(tcp.Port):
    """
    A TCP port whose connections are L{TorqueServer}s.
    """

    transport = TorqueServer


class TorqueConnector(tcp.Connector):
    """
    A TCP connector whose connections are L{TorqueClient}s.
    """

    def _makeTransport(self):
        return TorqueClient(self.host, self.port, self.bindAddress, self, self.reactor)


class TorqueUNIXServer(_SendsAtOnce, unix.Server):
    """
    A server-side UNIX stream connection: Twisted's, with writes sent at once
    (descriptors queued with C{sendFileDescriptor} keep Twisted's path).
    """


class TorqueUNIXClient(_SendsAtOnce, unix.Client):
    """
    A client-side UNIX stream connection: Twisted's, with writes sent at once.
    """


class TorqueUNIXPort(unix.Port):
    """
    A UNIX stream port whose connections are L{TorqueUNIXServer}s.
    """

    transport = TorqueUNIXServer


class TorqueUNIXConnector(unix.Connector):
    """
    A UNIX stream connector whose connections are L{TorqueUNIXClient}s.
    """

    def _makeTransport(self):
        return TorqueUNIXClient(self.address, self, self.reactor, self.checkPID)


@implementer(IReactorFDSet)
class TorqueReactor(posixbase.PosixReactorBase, posixbase._PollLikeMixin):
    """
    A Twisted reactor whose event loop is Torque's.

    A plain Python class that holds the native core in C{_core}: Twisted's
    test builders swap a reactor's C{__dict__} and C{__class__}.

    @ivar _selectables: fd -> the selectable registered for it.
    @ivar _reads: fds registered for reading.
    @ivar _writes: fds registered for writing.
    """

    # Torque reports a hang-up or an error as readable (or writable, for a
    # writer): the selectable's own read or write finds out which.
    _POLL_DISCONNECTED = 0
    _POLL_IN = _core.READ
    _POLL_OUT = _core.WRITE

    def __init__(self, backend=None):
        self._reads = set()
        self._writes = set()
        self._selectables = {}
        self._nativeClasses = {}
        self._core = _core.Core(
            self._torqueEvent,
            self._torqueLost,
            self._torqueStreamEnded,
            self._torqueStreamFailed,
            _bufferedWrite,
            _bufferedWriteSequence,
            log.ILogContext,
            context.theContextTracker,
            backend,
        )
        self._torqueWaker = self._core.waker()
        posixbase.PosixReactorBase.__init__(self)

    @property
    def torqueBackend(self):
        """
        The name of the Torque backend underneath (C{epoll}, C{io_uring}, ...).
        """
        return self._core.backend

    def _torqueEvent(self, selectable, fd, event):
        log.callWithLogger(selectable, self._doReadOrWrite, selectable, fd, event)

    def _torqueLost(self, selectable, fd, fdClosed, why):
        self._reads.discard(fd)
        self._writes.discard(fd)
        if self._selectables.get(fd) is selectable:
            del self._selectables[fd]
        self._core.set_interest(fd, selectable, False, False)
        if fdClosed:
            reason = error.ConnectionFdescWentAway(why)
        else:
            reason = error.ConnectionLost(why)
        self._disconnectSelectable(selectable, reason, False)

    def _torqueStreamEnded(self, transport, lost):
        why = main.CONNECTION_LOST if lost else main.CONNECTION_DONE
        log.callWithLogger(transport, self._disconnectSelectable, transport, why, True)

    def _torqueStreamFailed(self, transport, exception):
        def fail():
            # As _doReadOrWrite: logged, and the connection dropped with it.
            log.err(failure.Failure(exception))
            self._disconnectSelectable(transport, exception, True)

        log.callWithLogger(transport, fail)

    def _native(self, selectable):
        cls = type(selectable)
        native = self._nativeClasses.get(cls)
        if native is None:
            native = self._nativeClasses[cls] = _readsNatively(cls)
        # A connecting client, or an aborted connection, reads with a doRead
        # of its own for a while.
        if native and "doRead" not in selectable.__dict__:
            return native
        return 0

    def _add(self, xer, primary, other):
        fd = xer.fileno()
        if fd not in primary:
            self._core.set_interest(
                fd,
                xer,
                primary is self._reads or fd in other,
                primary is self._writes or fd in other,
                self._native(xer),
            )
            primary.add(fd)
            self._selectables[fd] = xer

    def addReader(self, reader):
        """
        Add a selectable to be told when its fd can be read.
        """
        self._add(reader, self._reads, self._writes)

    def addWriter(self, writer):
        """
        Add a selectable to be told when its fd can be written.
        """
        self._add(writer, self._writes, self._reads)

    def _remove(self, xer, primary):
        fd = xer.fileno()
        if fd == -1:
            # Closed already: find it by identity.
            for fd, fdes in self._selectables.items():
                if xer is fdes:
                    break
            else:
                return
        if fd in primary:
            reading = fd in self._reads and primary is not self._reads
            writing = fd in self._writes and primary is not self._writes
            # The core first: if it refuses (another thread), nothing changed.
            self._core.set_interest(fd, xer, reading, writing, self._native(xer) if reading else 0)
            primary.remove(fd)
            if not (reading or writing):
                del self._selectables[fd]

    def removeReader(self, reader):
        """
        Stop telling a selectable its fd can be read.
        """
        self._remove(reader, self._reads)

    def removeWriter(self, writer):
        """
        Stop telling a selectable its fd can be written.
        """
        self._remove(writer, self._writes)

    def removeAll(self):
        """
        Remove every selectable but the reactor's own, and return them.
        """
        return self._removeAll(
            [self._selectables[fd] for fd in self._reads],
            [self._selectables[fd] for fd in self._writes],
        )

    def getReaders(self):
        return [self._selectables[fd] for fd in self._reads]

    def getWriters(self):
        return [self._selectables[fd] for fd in self._writes]

    # callLater's queue is the core's; the handles are Twisted's DelayedCall.

    def callLater(self, delay, callable, *args, **kw):
        assert builtins_callable(callable), f"{callable} is not callable"
        assert delay >= 0, f"{delay} is not greater than or equal to 0 seconds"
        delayedCall = base.DelayedCall(
            self.seconds() + delay,
            callable,
            args,
            kw,
            self._cancelCallLater,
            self._moveCallLaterSooner,
            seconds=self.seconds,
        )
        self._core.schedule_timer(delayedCall)
        return delayedCall

    def _moveCallLaterSooner(self, delayedCall):
        self._core.timer_moved_sooner(delayedCall)

    def _cancelCallLater(self, delayedCall):
        self._core.timer_cancelled()

    def _insertNewDelayedCalls(self):
        self._core.insert_new_timers()

    def getDelayedCalls(self):
        return self._core.delayed_calls()

    def timeout(self):
        return self._core.timer_timeout(self.seconds())

    def runUntilCurrent(self):
        if self.threadCallQueue:
            # As Twisted's: calls queued by these calls run next pass.
            count = 0
            total = len(self.threadCallQueue)
            for f, a, kw in self.threadCallQueue:
                try:
                    f(*a, **kw)
                except BaseException:
                    _threadCallFailed()
                count += 1
                if count == total:
                    break
            del self.threadCallQueue[:count]
            if self.threadCallQueue:
                self.wakeUp()
        self._core.run_timers(self.seconds(), self._torqueTimedCallFailed)
        if self._justStopped:
            self._justStopped = False
            self.fireSystemEvent("shutdown")

    def _torqueTimedCallFailed(self, call, exception):
        # Raised again inside Twisted's own handler, so it is logged (or
        # not suppressed) exactly as on Twisted's reactors.
        if not hasattr(base, "_DEFAULT_DELAYED_CALL_LOGGING_HANDLER"):
            # Twisted before its handlers: its runUntilCurrent logged so.
            log.err(failure.Failure(exception), "while handling timed call")
            return
        if call.creator:
            handler = base._log.failuresHandled(
                "while handling timed call {previous()}",
                previous=lambda creator=call.creator: (
                    "\n"
                    + (" C: from a DelayedCall created here:\n")
                    + " C:"
                    + "".join(creator).rstrip().replace("\n", "\n C:")
                    + "\n"
                ),
            )
        else:
            handler = base._DEFAULT_DELAYED_CALL_LOGGING_HANDLER
        with handler:
            raise exception

    def listenTCP(self, port, factory, backlog=50, interface=""):
        p = TorquePort(port, factory, backlog, interface, self)
        p.startListening()
        return p

    def connectTCP(self, host, port, factory, timeout=30, bindAddress=None):
        c = TorqueConnector(host, port, factory, timeout, bindAddress, self)
        c.connect()
        return c

    def listenUNIX(self, address, factory, backlog=50, mode=0o666, wantPID=0):
        p = TorqueUNIXPort(address, factory, backlog, mode, self, wantPID)
        p.startListening()
        return p

    def connectUNIX(self, address, factory, timeout=30, checkPID=0):
        c = TorqueUNIXConnector(address, factory, timeout, self, checkPID)
        c.connect()
        return c

    def wakeUp(self):
        """
        Wake the wait from any thread (C{callFromThread}'s wake): the core's
        own waker, an eventfd write. Twisted's waker stays registered for
        signals, which wake the wait through it.
        """
        self._torqueWaker.wake()

    def doIteration(self, timeout):
        """
        Wait at most C{timeout} seconds (L{None}: until something happens) and
        dispatch what is ready.
        """
        self._core.iterate(timeout)


def install(backend=None):
    """
    Install a L{TorqueReactor} as Twisted's global reactor and return it.

    @param backend: the Torque backend's name, or L{None} for
        C{TORQUE_REACTOR} or the platform's best.
    @raise twisted.internet.error.ReactorAlreadyInstalledError: a reactor is
        already installed.
    """
    import sys

    from twisted.internet.main import installReactor

    if "twisted.internet.reactor" in sys.modules:
        # Refused before a reactor (and its fds) is made for nothing.
        raise error.ReactorAlreadyInstalledError("reactor already installed")
    reactor = TorqueReactor(backend)
    installReactor(reactor)
    return reactor


__all__ = ["TorqueReactor", "install"]
