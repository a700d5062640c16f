"""
The Python echo servers of Torque's echo benchmark (torque/benches/echo.rs runs
them as `python-KIND`): the same Twisted protocol under Twisted's epollreactor
and under Torque's reactor, and the same server as an asyncio protocol on
asyncio's own loop and on uvloop. Pins itself to CPU 0, prints "PORT n".

    python echo_server.py twisted-epoll | twisted-torque | asyncio | uvloop
"""

import os
import sys


def announce(port):
    print(f"PORT {port}", flush=True)


def twisted_server(reactor_name):
    if reactor_name == "torque":
        import torque_twisted

        torque_twisted.install()
    else:
        from twisted.internet import epollreactor

        epollreactor.install()
    from twisted.internet import protocol, reactor

    class Echo(protocol.Protocol):
        def dataReceived(self, data):
            self.transport.write(data)

    factory = protocol.ServerFactory()
    factory.protocol = Echo
    port = reactor.listenTCP(0, factory, backlog=1024, interface="127.0.0.1")
    announce(port.getHost().port)
    reactor.run()


def asyncio_server(use_uvloop):
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=1024)
        announce(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    if use_uvloop:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


if __name__ == "__main__":
    import resource

    os.sched_setaffinity(0, {0})
    # 10,000 idle connections in the memory row.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    kind = sys.argv[1]
    if kind.startswith("twisted-"):
        twisted_server(kind[len("twisted-"):])
    elif kind in ("asyncio", "uvloop"):
        asyncio_server(kind == "uvloop")
    else:
        sys.exit(f"unknown server {kind!r}")
