"""
The native stream path (reads straight into dataReceived, writes sent at
once) at its edges: half-close, resets, exceptions in dataReceived, writes
after close, bad writes, log prefixes, producers, and calls from other threads.
Twisted's own suites cover the rest; these pin down what the native path
must keep exactly as Twisted does it, and pass on Twisted's own reactors too.
"""

import socket
import threading

from zope.interface import implementer

from twisted.internet import defer, error, protocol, reactor
from twisted.internet.interfaces import IHalfCloseableProtocol, IPullProducer
from twisted.python import log
from twisted.trial import unittest

from ._support import notTorque


class _Recorder(protocol.Protocol):
    """
    Records what it receives and how it was disconnected.
    """

    def __init__(self):
        self.received = b""
        self.lost = defer.Deferred()
        self.made = defer.Deferred()

    def connectionMade(self):
        self.made.callback(self)

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.reason = reason
        self.lost.callback(None)


class _Server:
    """
    A port on loopback whose protocols come from C{build}, and a blocking
    client socket connected to it.
    """

    def __init__(self, testCase, build):
        self.protocols = []

        def buildProtocol(addr):
            p = build()
            self.protocols.append(p)
            return p

        factory = protocol.ServerFactory()
        factory.buildProtocol = buildProtocol
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        testCase.addCleanup(self.port.stopListening)

    def connect(self):
        client = socket.create_connection(("127.0.0.1", self.port.getHost().port))
        client.settimeout(30)
        return client


@implementer(IPullProducer)
class _MoreOnSecondAsk:
    """
    A pull producer that writes " and more" when asked a second time, then
    unregisters and closes the connection.
    """

    def __init__(self, transport):
        self.transport = transport
        self.calls = 0

    def resumeProducing(self):
        self.calls += 1
        if self.calls == 2:
            self.transport.write(b" and more")
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def stopProducing(self):
        pass


def _waitFor(predicate):
    """
    Fire once C{predicate()} is true, checking on each pass.
    """
    d = defer.Deferred()

    def check():
        if predicate():
            d.callback(None)
        else:
            reactor.callLater(0.001, check)

    check()
    return d


def _readAll(client):
    """
    Read a blocking client socket to its end, then close it.
    """
    data = bytearray()
    while chunk := client.recv(1 << 20):
        data += chunk
    client.close()
    return bytes(data)


def _inThread(f, *args):
    """
    Run a blocking client step off the reactor thread.
    """
    from twisted.internet.threads import deferToThread

    return deferToThread(f, *args)


class NativeStreamTests(unittest.TestCase):
    """
    These hold on Twisted's own reactors too (trial --reactor=epoll runs
    them), except the refusal of other threads, which is Torque's.
    """

    @defer.inlineCallbacks
    def test_halfClose(self):
        """
        The peer's shutdown(SHUT_WR) reaches an IHalfCloseableProtocol as
        readConnectionLost, and it can still answer before closing.
        """

        @implementer(IHalfCloseableProtocol)
        class Answering(_Recorder):
            def readConnectionLost(self):
                self.transport.write(b"got " + self.received)
                self.transport.loseConnection()

            def writeConnectionLost(self):
                pass

        server = _Server(self, Answering)
        client = server.connect()
        client.sendall(b"question")
        client.shutdown(socket.SHUT_WR)


        answer = yield _inThread(_readAll, client)
        self.assertEqual(answer, b"got question")
        yield server.protocols[0].lost
        server.protocols[0].reason.trap(error.ConnectionDone)

    @defer.inlineCallbacks
    def test_cleanCloseAndReset(self):
        """
        A peer's close is ConnectionDone; a peer's reset is ConnectionLost.
        """
        server = _Server(self, _Recorder)
        closing = server.connect()
        yield _waitFor(lambda: len(server.protocols) == 1)
        closing.close()
        yield server.protocols[0].lost
        server.protocols[0].reason.trap(error.ConnectionDone)

        resetting = server.connect()
        yield _waitFor(lambda: len(server.protocols) == 2)
        resetting.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        resetting.close()
        yield server.protocols[1].lost
        server.protocols[1].reason.trap(error.ConnectionLost)

    @defer.inlineCallbacks
    def test_resetSeenByAWrite(self):
        """
        A write that meets the peer's reset (and so consumes the socket's
        error) still ends the connection with ConnectionLost, not
        ConnectionDone.
        """
        server = _Server(self, _Recorder)
        client = server.connect()
        yield _waitFor(lambda: len(server.protocols) == 1)
        # Reset and write in one go: on loopback the reset arrives during
        # close(), so the write meets it before the reactor reads it.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()
        server.protocols[0].transport.write(b"into a reset connection")
        yield server.protocols[0].lost
        server.protocols[0].reason.trap(error.ConnectionLost)

    @defer.inlineCallbacks
    def test_exceptionInDataReceived(self):
        """
        An exception in dataReceived is logged through Twisted's logging and
        drops the connection with that exception as the reason.
        """

        class Failing(_Recorder):
            def dataReceived(self, data):
                raise ZeroDivisionError("bad input")

        server = _Server(self, Failing)
        client = server.connect()
        client.sendall(b"boom")
        yield _waitFor(lambda: len(server.protocols) == 1)
        yield server.protocols[0].lost
        server.protocols[0].reason.trap(ZeroDivisionError)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        gone = yield _inThread(client.recv, 10)
        self.assertEqual(gone, b"")
        client.close()

    @defer.inlineCallbacks
    def test_writesAfterCloseAreIgnored(self):
        """
        Writes after loseConnection still go out (Twisted flushes them);
        writes after the connection is lost are ignored, without an error.
        """
        server = _Server(self, _Recorder)
        client = server.connect()
        yield _waitFor(lambda: len(server.protocols) == 1)
        transport = server.protocols[0].transport
        transport.write(b"before ")
        transport.loseConnection()
        transport.write(b"during")
        yield server.protocols[0].lost
        transport.write(b"after")
        transport.writeSequence([b"after", b"again"])


        data = yield _inThread(_readAll, client)
        self.assertEqual(data, b"before during")

    @defer.inlineCallbacks
    def test_badWrites(self):
        """
        write and writeSequence refuse text with TypeError, as Twisted's do,
        and the connection stays usable.
        """
        server = _Server(self, _Recorder)
        client = server.connect()
        yield _waitFor(lambda: len(server.protocols) == 1)
        transport = server.protocols[0].transport
        self.assertRaises(TypeError, transport.write, "text")
        self.assertRaises(TypeError, transport.writeSequence, [b"ok", "text"])
        transport.write(b"fine")
        data = yield _inThread(client.recv, 10)
        self.assertEqual(data, b"fine")
        client.close()
        yield server.protocols[0].lost

    @defer.inlineCallbacks
    def test_logPrefix(self):
        """
        Messages logged from dataReceived carry the transport's log prefix as
        their system, as with log.callWithLogger on Twisted's reactors.
        """
        systems = []

        def observer(event):
            if event.get("message") == ("in dataReceived",):
                systems.append(event["system"])

        log.addObserver(observer)
        self.addCleanup(log.removeObserver, observer)

        class Logging(_Recorder):
            def dataReceived(self, data):
                log.msg("in dataReceived")
                self.transport.loseConnection()

        server = _Server(self, Logging)
        client = server.connect()
        client.sendall(b"x")
        yield _waitFor(lambda: len(server.protocols) == 1)
        yield server.protocols[0].lost
        client.close()
        self.assertEqual(systems, [server.protocols[0].transport.logPrefix()])

    @defer.inlineCallbacks
    def test_pullProducerAfterWrite(self):
        """
        A pull producer registered right after a write is asked for more once
        that write is flushed, as on Twisted's reactors, though the write went
        out at once.
        """
        server = _Server(self, _Recorder)
        client = server.connect()
        yield _waitFor(lambda: len(server.protocols) == 1)
        transport = server.protocols[0].transport
        transport.write(b"first")
        producer = _MoreOnSecondAsk(transport)
        transport.registerProducer(producer, False)


        data = yield _inThread(_readAll, client)
        self.assertEqual(data, b"first and more")

    @defer.inlineCallbacks
    def test_bigWriteIsBuffered(self):
        """
        A write bigger than the socket takes is sent in part at once and the
        rest by Twisted's buffer as the peer reads.
        """
        server = _Server(self, _Recorder)
        client = server.connect()
        yield _waitFor(lambda: len(server.protocols) == 1)
        payload = bytes(range(256)) * (64 * 1024)  # 16 MiB
        server.protocols[0].transport.write(payload)
        server.protocols[0].transport.loseConnection()


        data = yield _inThread(_readAll, client)
        self.assertEqual(len(data), len(payload))
        self.assertTrue(data == payload)

    @defer.inlineCallbacks
    def test_callsFromOtherThreadsAreRefused(self):
        """
        The fd set and a transport's write called from another thread raise
        RuntimeError (use callFromThread), and change nothing.
        """
        server = _Server(self, _Recorder)
        client = server.connect()
        yield _waitFor(lambda: len(server.protocols) == 1)
        transport = server.protocols[0].transport

        def misuse():
            caught = []
            for call in (lambda: transport.write(b"x"), lambda: reactor.removeReader(transport)):
                try:
                    call()
                except RuntimeError as e:
                    caught.append(str(e))
            return caught

        if notTorque:
            raise unittest.SkipTest(notTorque)
        caught = yield _inThread(misuse)
        self.assertEqual(len(caught), 2)
        self.assertIn("callFromThread", caught[0])
        self.assertIn(transport, reactor.getReaders())
        transport.write(b"still fine")
        data = yield _inThread(client.recv, 100)
        self.assertEqual(data, b"still fine")
        client.close()
        yield server.protocols[0].lost


class HeldWriteTests(unittest.TestCase):
    """
    Writes made inside a connection's own dataReceived are held and sent
    together when it returns.
    """

    @defer.inlineCallbacks
    def test_orderKeptAcrossPaths(self):
        """
        Held bytes, a write too big to hold and what follows it (queued in
        Twisted's buffer behind the unsent part) arrive in order.
        """
        big = b"x" * 3_000_000

        class Writer(_Recorder):
            def dataReceived(self, data):
                self.transport.write(b"head ")
                self.transport.writeSequence([b"and ", b"more "])
                self.transport.write(big)
                self.transport.write(b" tail")
                self.transport.loseConnection()

        server = _Server(self, Writer)
        client = server.connect()
        client.sendall(b"go")
        data = yield _inThread(_readAll, client)
        self.assertTrue(data == b"head and more " + big + b" tail", data[:40])

    @defer.inlineCallbacks
    def test_orderKeptAcrossPauseAndResume(self):
        """
        Bytes written before pauseProducing and after resumeProducing in the
        same dataReceived (a Deferred that has already fired) keep their order,
        though the connection's registration is dropped and made again.
        """

        class Pausing(_Recorder):
            def dataReceived(self, data):
                self.transport.write(b"ack;")
                self.transport.pauseProducing()

                def resumed(_):
                    self.transport.resumeProducing()
                    self.transport.write(b"result;")
                    self.transport.loseConnection()

                defer.succeed(None).addCallback(resumed)

        server = _Server(self, Pausing)
        client = server.connect()
        client.sendall(b"go")
        data = yield _inThread(_readAll, client)
        self.assertEqual(data, b"ack;result;")

    @defer.inlineCallbacks
    def test_pullProducerRegisteredByATimer(self):
        """
        A pull producer registered by a timer right after dataReceived wrote
        is still asked for more once that write is flushed.
        """

        class Writer(_Recorder):
            def dataReceived(self, data):
                self.transport.write(b"first")
                reactor.callLater(0, self.transport.registerProducer, _MoreOnSecondAsk(self.transport), False)

        server = _Server(self, Writer)
        client = server.connect()
        client.sendall(b"go")
        data = yield _inThread(_readAll, client)
        self.assertEqual(data, b"first and more")

    @defer.inlineCallbacks
    def test_heldWritesOfAFailedDeliveryAreDropped(self):
        """
        As on Twisted's reactors, what dataReceived wrote before raising is
        not sent: the connection is dropped at once.
        """

        class WritesThenFails(_Recorder):
            def dataReceived(self, data):
                self.transport.write(b"partial answer")
                raise ValueError("bad request")

        server = _Server(self, WritesThenFails)
        client = server.connect()
        client.sendall(b"go")
        data = yield _inThread(_readAll, client)
        self.assertEqual(data, b"")
        yield _waitFor(lambda: len(server.protocols) == 1)
        yield server.protocols[0].lost
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)


class UNIXStreamTests(unittest.TestCase):
    """
    UNIX stream connections take the same native path, with passed
    descriptors handed over before the bytes that carried them.
    """

    def _listen(self, build):
        path = self.mktemp()
        protocols = []

        def buildProtocol(addr):
            p = build()
            protocols.append(p)
            return p

        factory = protocol.ServerFactory()
        factory.buildProtocol = buildProtocol
        port = reactor.listenUNIX(path, factory)
        self.addCleanup(port.stopListening)
        return path, protocols

    @defer.inlineCallbacks
    def test_echo(self):
        """
        An echo server on a UNIX socket answers a blocking client.
        """

        class Echo(_Recorder):
            def dataReceived(self, data):
                self.transport.write(data)

        path, protocols = self._listen(Echo)

        def exchange():
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.settimeout(30)
            client.connect(path)
            payload = bytes(range(256)) * 4096
            threading.Thread(target=client.sendall, args=(payload,)).start()
            got = bytearray()
            while len(got) < len(payload):
                got += client.recv(1 << 20)
            client.close()
            return bytes(got) == payload

        same = yield _inThread(exchange)
        self.assertTrue(same)
        yield protocols[0].lost

    @defer.inlineCallbacks
    def test_descriptorsBeforeBytes(self):
        """
        A descriptor sent with bytes reaches fileDescriptorReceived before
        dataReceived gets those bytes, and is a working descriptor for the
        same file.
        """
        import os

        from twisted.internet.interfaces import IFileDescriptorReceiver

        events = []

        @implementer(IFileDescriptorReceiver)
        class Receiver(_Recorder):
            def fileDescriptorReceived(self, fd):
                events.append(("fd", os.fstat(fd).st_ino))
                os.close(fd)

            def dataReceived(self, data):
                events.append(("data", data))
                self.transport.loseConnection()

        path, protocols = self._listen(Receiver)
        sent = open(self.mktemp(), "wb")
        self.addCleanup(sent.close)

        def send():
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.settimeout(30)
            client.connect(path)
            socket.send_fds(client, [b"with fd"], [sent.fileno()])
            client.recv(1)
            client.close()

        yield _inThread(send)
        yield _waitFor(lambda: len(protocols) == 1)
        yield protocols[0].lost
        self.assertEqual(events, [("fd", os.fstat(sent.fileno()).st_ino), ("data", b"with fd")])
