"""
What the tests share.
"""

import os
import sys

from twisted.internet import reactor, utils

from torque_twisted import TorqueReactor

notTorque = None if isinstance(reactor, TorqueReactor) else "run with trial --reactor=torque"


def runPython(code, env=None):
    """
    Run C{code} in a fresh interpreter; fires with (out, err, exit code).
    """
    environ = dict(os.environ)
    environ.update(env or {})
    return utils.getProcessOutputAndValue(sys.executable, ["-c", code], env=environ)
