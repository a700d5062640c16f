"""
What the benchmark servers share: the process set-up and the reactor choice.
"""

import os
import resource


def prepare_server_process():
    """
    Pin this server to CPU 0 (the load generator runs on CPU 1) and raise its
    fd limit (10,000 idle connections in the echo benchmark's memory row).
    """
    os.sched_setaffinity(0, {0})
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def install_twisted_reactor(name):
    """
    Install Twisted's reactor C{name}: "torque" (Torque's) or "epoll".
    """
    if name == "torque":
        import torque_twisted

        torque_twisted.install()
    elif name == "epoll":
        from twisted.internet import epollreactor

        epollreactor.install()
    else:
        raise SystemExit(f"unknown reactor {name!r}")
