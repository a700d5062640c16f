"""
The Python echo servers of Torque's echo benchmark (torque/benches/echo.rs runs
them as `python-KIND`): the same Twisted protocol under Twisted's epollreactor
and under Torque's reactor, and the same server as an asyncio protocol on
asyncio's own loop and on uvloop. Pins itself to CPU 0, prints "PORT n".

    python echo_server.py twisted-epoll | twisted-torque | asyncio | uvloop
"""

import sys

from _common import install_twisted_reactor, prepare_server_process


def announce(port):
    print(f"PORT {port}", flush=True)


def twisted_server(reactor_name):
    install_twisted_reactor(reactor_name)
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
    prepare_server_process()
    kind = sys.argv[1]
    if kind.startswith("twisted-"):
        twisted_server(kind[len("twisted-"):])
    elif kind in ("asyncio", "uvloop"):
        asyncio_server(kind == "uvloop")
    else:
        sys.exit(f"unknown server {kind!r}")
