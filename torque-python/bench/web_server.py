"""
The servers of the twisted.web benchmark (bench/web.py): twisted.web's hello
world under Twisted's epollreactor and under Torque's reactor, and, as the
anchor, a minimal keep-alive HTTP/1.1 responder as an asyncio protocol on
uvloop (not twisted.web: no parser, no headers read; a floor, not a peer).
Pins itself to CPU 0, prints "PORT n".

    python web_server.py twisted-epoll | twisted-torque | uvloop
"""

import sys

from _common import install_twisted_reactor, prepare_server_process

BODY = b"Hello, world!"


def twisted_server(reactor_name):
    install_twisted_reactor(reactor_name)
    from twisted.internet import reactor
    from twisted.web import resource as web_resource, server

    class Hello(web_resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            request.setHeader(b"content-type", b"text/plain")
            return BODY

    site = server.Site(Hello())
    site.noisy = False
    # No access log: the benchmark measures serving, not logging.
    site.log = lambda request: None
    port = reactor.listenTCP(0, site, backlog=1024, interface="127.0.0.1")
    print(f"PORT {port.getHost().port}", flush=True)
    reactor.run()


def uvloop_server():
    import asyncio

    import uvloop

    response = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
    )

    class Http(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.pending = b""

        def data_received(self, data):
            self.pending += data
            while b"\r\n\r\n" in self.pending:
                _, self.pending = self.pending.split(b"\r\n\r\n", 1)
                self.transport.write(response)

    async def main():
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(Http, "127.0.0.1", 0, backlog=1024)
        print(f"PORT {srv.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Event().wait()

    uvloop.run(main())


if __name__ == "__main__":
    prepare_server_process()
    kind = sys.argv[1]
    if kind.startswith("twisted-"):
        twisted_server(kind[len("twisted-"):])
    elif kind == "uvloop":
        uvloop_server()
    else:
        sys.exit(f"unknown server {kind!r}")
