"""
Real programs on the reactor, with real clients: twist web serving files to
curl and to Twisted's own HTTP client, and an echo server written the Twisted
way answering a plain blocking-socket client in another process.
"""

import os
import re
import shutil
import signal
import sys

from twisted.internet import defer, protocol, reactor, utils
from twisted.trial import unittest

from ._support import notTorque, runPython


class _OutputWatcher(protocol.ProcessProtocol):
    """
    Collects a child's output and fires C{found} with the first match of
    C{pattern}, and C{ended} with its exit code.
    """

    def __init__(self, pattern):
        self.pattern = re.compile(pattern)
        self.output = b""
        self.found = defer.Deferred()
        self.ended = defer.Deferred()

    def childDataReceived(self, fd, data):
        self.output += data
        match = self.pattern.search(self.output)
        if match and not self.found.called:
            self.found.callback(match)

    def processEnded(self, reason):
        if not self.found.called:
            self.found.errback(RuntimeError(f"exited before {self.pattern.pattern!r}: {self.output[-2000:]!r}"))
        self.ended.callback((reason.value.exitCode, reason.value.signal))


class TwistWebTests(unittest.TestCase):
    skip = notTorque

    def setUp(self):
        self.root = self.mktemp()
        os.makedirs(self.root)
        self.body = os.urandom(3 * 1024 * 1024)
        with open(os.path.join(self.root, "blob.bin"), "wb") as f:
            f.write(self.body)

    @defer.inlineCallbacks
    def test_twistWeb(self):
        """
        twist --reactor=torque web --path DIR serves the directory's files to
        curl and to Twisted's Agent, and shuts down cleanly on SIGTERM (then
        ends by that signal, as twist does on every reactor).
        """
        twist = os.path.join(os.path.dirname(sys.executable), "twist")
        watcher = _OutputWatcher(rb"Site starting on (\d+)")
        args = [twist, "--reactor=torque", "web", "--listen", "tcp:0:interface=127.0.0.1", "--path", self.root]
        process = reactor.spawnProcess(watcher, twist, args, env=dict(os.environ))
        try:
            match = yield watcher.found
            url = f"http://127.0.0.1:{int(match.group(1))}/blob.bin"
            if shutil.which("curl"):
                out, err, code = yield utils.getProcessOutputAndValue("curl", ["-sS", "--max-time", "30", url])
                self.assertEqual((code, err), (0, b""))
                self.assertEqual(out, self.body)
            from twisted.web.client import Agent, readBody

            response = yield Agent(reactor).request(b"GET", url.encode())
            self.assertEqual(response.code, 200)
            body = yield readBody(response)
            self.assertEqual(body, self.body)
        finally:
            if process.pid is not None:
                process.signalProcess("TERM")
        ended = yield watcher.ended
        self.assertIn(ended, [(0, None), (None, signal.SIGTERM)])
        self.assertIn(b"Main loop terminated", watcher.output)


class _Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class EchoServerTests(unittest.TestCase):
    skip = notTorque

    def setUp(self):
        factory = protocol.ServerFactory.forProtocol(_Echo)
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    @defer.inlineCallbacks
    def test_blockingClient(self):
        """
        A plain blocking client in another process sends 8 MiB through the
        echo server (the server's writes outrun the client's reads, so its
        buffer and writability path work too) and reads it all back.
        """
        code = (
            "import socket, sys, threading\n"
            f"s = socket.create_connection(('127.0.0.1', {self.port.getHost().port}))\n"
            "data = bytes(range(256)) * 32768\n"
            "t = threading.Thread(target=s.sendall, args=(data,)); t.start()\n"
            "got = bytearray()\n"
            "while len(got) < len(data):\n"
            "    chunk = s.recv(1 << 20)\n"
            "    if not chunk: break\n"
            "    got += chunk\n"
            "t.join()\n"
            "print(got == data, len(got))\n"
        )
        out, err, exit = yield runPython(code)
        self.assertEqual((out, exit), (b"True 8388608\n", 0), err)

    @defer.inlineCallbacks
    def test_twistedClient(self):
        """
        Twisted's own client endpoint on the same reactor gets its lines back.
        """
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        class Client(protocol.Protocol):
            def __init__(self):
                self.received = b""
                self.done = defer.Deferred()

            def connectionMade(self):
                for i in range(100):
                    self.transport.write(b"line %d\n" % i)

            def dataReceived(self, data):
                self.received += data
                if self.received.count(b"\n") == 100:
                    self.transport.loseConnection()

            def connectionLost(self, reason):
                self.done.callback(self.received)

        client = Client()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        yield connectProtocol(endpoint, client)
        received = yield client.done
        self.assertEqual(received, b"".join(b"line %d\n" % i for i in range(100)))


class SignalTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_sigintWakesTheNativeWait(self):
        """
        SIGINT from another process stops a reactor that sleeps in the native
        wait (the interpreter lock released, no timer due) through Twisted's
        handlers.
        """
        code = (
            "import torque_twisted\n"
            "reactor = torque_twisted.install()\n"
            "reactor.callWhenRunning(print, 'ready', flush=True)\n"
            "reactor.addSystemEventTrigger('after', 'shutdown', print, 'stopped', flush=True)\n"
            "reactor.run()\n"
        )
        watcher = _OutputWatcher(rb"ready")
        process = reactor.spawnProcess(watcher, sys.executable, [sys.executable, "-c", code], env=dict(os.environ))
        yield watcher.found
        # Let it reach the wait: it has nothing else to do.
        d = defer.Deferred()
        reactor.callLater(0.2, d.callback, None)
        yield d
        process.signalProcess("INT")
        ended = yield watcher.ended
        self.assertIn(b"stopped", watcher.output)
        self.assertIn(ended, [(0, None), (None, signal.SIGINT), (1, None)])
