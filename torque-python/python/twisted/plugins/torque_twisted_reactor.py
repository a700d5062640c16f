# Twisted finds reactor plugins in every twisted/plugins directory on
# sys.path that has no __init__.py: this file makes --reactor=torque work for
# twistd, twist and trial.
from twisted.application.reactors import Reactor

torque = Reactor(
    "torque",
    "torque_twisted",
    "Torque: Twisted's reactor rebuilt in Rust (TORQUE_REACTOR picks epoll, io_uring, poll or select)",
)
