"""
Installing the reactor: install(), the plugin, the backend choice.
"""

from twisted.application.reactors import getReactorTypes
from twisted.trial import unittest

from torque_twisted import TorqueReactor

from ._support import notTorque, runPython


class InstallTests(unittest.TestCase):
    def test_globalReactorIsTorque(self):
        """
        trial --reactor=torque installs a TorqueReactor over a Torque backend.
        """
        from twisted.internet import reactor

        self.assertIsInstance(reactor, TorqueReactor)
        self.assertIn(reactor.torqueBackend, ("epoll", "io_uring", "poll", "select", "kqueue"))

    test_globalReactorIsTorque.skip = notTorque  # type: ignore[attr-defined]

    def test_installTwice(self):
        """
        A second install() raises Twisted's ReactorAlreadyInstalledError.
        """
        code = (
            "import torque_twisted\n"
            "torque_twisted.install()\n"
            "from twisted.internet.error import ReactorAlreadyInstalledError\n"
            "try:\n"
            "    torque_twisted.install()\n"
            "except ReactorAlreadyInstalledError:\n"
            "    print('refused')\n"
        )
        d = runPython(code)
        d.addCallback(lambda result: self.assertEqual((result[0], result[2]), (b"refused\n", 0)))
        return d

    def test_installAfterAnotherReactor(self):
        """
        install() after another reactor was installed raises
        ReactorAlreadyInstalledError and leaves that reactor in place.
        """
        code = (
            "from twisted.internet import pollreactor\n"
            "pollreactor.install()\n"
            "import torque_twisted\n"
            "from twisted.internet.error import ReactorAlreadyInstalledError\n"
            "try:\n"
            "    torque_twisted.install()\n"
            "except ReactorAlreadyInstalledError:\n"
            "    from twisted.internet import reactor\n"
            "    print(type(reactor).__name__)\n"
        )
        d = runPython(code)
        d.addCallback(lambda result: self.assertEqual((result[0], result[2]), (b"PollReactor\n", 0)))
        return d

    def test_plugin(self):
        """
        The reactor plugin names it "torque", for --reactor=torque.
        """
        found = {r.shortName: r.moduleName for r in getReactorTypes()}
        self.assertEqual(found.get("torque"), "torque_twisted")

    def test_backendFromEnvironment(self):
        """
        TORQUE_REACTOR picks the backend under the reactor.
        """
        code = "import torque_twisted\nprint(torque_twisted.install().torqueBackend)\n"
        d = runPython(code, env={"TORQUE_REACTOR": "poll"})
        d.addCallback(lambda result: self.assertEqual(result[0], b"poll\n"))
        return d

    def test_unknownBackend(self):
        """
        An unknown backend name is a ValueError that lists the known ones.
        """
        error = self.assertRaises(ValueError, TorqueReactor, "nosuch")
        self.assertIn("epoll", str(error))
