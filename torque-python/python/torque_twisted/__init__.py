"""
Torque, Twisted's reactor rebuilt in Rust, as a reactor for Twisted.

Install it before anything imports ``twisted.internet.reactor``, like any of
Twisted's own reactors::

    import torque_twisted
    torque_twisted.install()

    from twisted.internet import reactor

or pick it by name: ``twistd --reactor=torque ...``, ``trial --reactor=torque ...``.
``TORQUE_REACTOR`` (``epoll``, ``io_uring``, ``poll``, ``select``) picks the
Torque backend underneath; by default the platform's best.
"""

from ._reactor import TorqueReactor, install

__all__ = ["TorqueReactor", "install"]
