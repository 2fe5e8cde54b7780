#!/usr/bin/python3
# Reference peer for aloop's echo benchmark: a TCP echo server written the way an
# asyncio user would write it, in one of asyncio's three styles, so aloop's own
# sock_*, transport/protocol and streams layers can be compared with the library
# they are modelled on, on the stock loop or on uvloop.
#
#   --mode sock      loop.sock_accept / sock_recv_into (one reused 64 KiB bytearray)
#                    / sock_sendall, one task per connection (the docs' low-level idiom)
#   --mode protocol  asyncio.Protocol whose data_received does transport.write(data),
#                    served by loop.create_server (the docs' echo protocol)
#   --mode streams   asyncio.start_server; the handler loops reader.read(65536),
#                    writer.write(data), await writer.drain() until EOF, then closes
#
# The load client is ping-pong (it sends one message and waits for all of it to come
# back), so at most one message per connection is ever buffered and the plain
# transport.write idiom needs no extra flow control.
#
# --tls-cert FILE --tls-key FILE serve TLS (an ssl.SSLContext on the server side, passed to
# create_server / start_server) in protocol and streams modes; sock mode has no TLS of its own.
#
# Runs under Debian's /usr/bin/python3 so that the python3-uvloop package is found.
# Prints "echo-asyncio: listening on HOST:PORT" (or echo-uvloop) once listening, stops
# cleanly on SIGINT/SIGTERM ("...: stopped", status 0); status 3 if uvloop is missing.

import argparse
import asyncio
import signal
import socket
import ssl
import sys

# beside this file
from peer_args import add_listen_args, add_loop_args, format_addr, run_on_loop

BACKLOG = 1024
BUFSIZE = 65536


def parse_args():
    p = argparse.ArgumentParser(
        description="asyncio echo server (reference peer for aloop's echo benchmark)")
    p.add_argument("--mode", choices=("sock", "protocol", "streams"), default="protocol",
                   help="asyncio style to serve with (default: protocol)")
    add_loop_args(p)
    p.add_argument("--tls-cert", metavar="FILE",
                   help="serve TLS with this certificate chain (PEM; with --tls-key)")
    p.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    add_listen_args(p)
    a = p.parse_args()
    if bool(a.tls_cert) != bool(a.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if a.tls_cert and a.mode == "sock":
        p.error("TLS is served in protocol and streams modes (sock mode has no transport)")
    return a


def server_context(cert, key):
    """The server side of TLS with the ssl module's defaults (TLS 1.2 and 1.3)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


# --- sock mode ---------------------------------------------------------------

async def serve_sock(host, port, tls=None):
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, addr = infos[0]
    lsock = socket.create_server(addr, family=family, backlog=BACKLOG)
    lsock.setblocking(False)
    tasks = set()

    async def handle(conn):
        buf = bytearray(BUFSIZE)
        view = memoryview(buf)
        try:
            while True:
                n = await loop.sock_recv_into(conn, buf)
                if not n:
                    break
                await loop.sock_sendall(conn, view[:n])
        except OSError:
            pass  # reset by the peer and the like: drop this connection only
        finally:
            view.release()
            conn.close()

    async def accept_loop():
        while True:
            try:
                conn, _ = await loop.sock_accept(lsock)
            except (ConnectionAbortedError, InterruptedError):
                continue
            except OSError as e:  # EMFILE and the like: back off, keep serving
                print(f"accept: {e}", file=sys.stderr, flush=True)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t = loop.create_task(handle(conn))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    acceptor = loop.create_task(accept_loop())

    async def close():
        acceptor.cancel()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(acceptor, *tasks, return_exceptions=True)
        lsock.close()

    return lsock.getsockname(), close


# --- protocol mode -----------------------------------------------------------

class EchoProtocol(asyncio.Protocol):
    def __init__(self, transports):
        self.transports = transports
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.transports.add(transport)

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        self.transports.discard(self.transport)


async def serve_protocol(host, port, tls=None):
    loop = asyncio.get_running_loop()
    transports = set()
    server = await loop.create_server(lambda: EchoProtocol(transports), host, port,
                                      backlog=BACKLOG, ssl=tls)

    async def close():
        server.close()
        for tr in list(transports):
            tr.abort()
        await server.wait_closed()

    return server.sockets[0].getsockname(), close


# --- streams mode ------------------------------------------------------------

async def serve_streams(host, port, tls=None):
    loop = asyncio.get_running_loop()
    handlers = {}

    async def handle(reader, writer):
        handlers[asyncio.current_task()] = writer
        try:
            while True:
                data = await reader.read(BUFSIZE)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
            writer.close()
            await writer.wait_closed()
        except OSError:
            writer.transport.abort()  # reset by the peer: drop this connection only
        finally:
            handlers.pop(asyncio.current_task(), None)

    server = await asyncio.start_server(handle, host, port, backlog=BACKLOG, ssl=tls)

    async def close():
        server.close()
        tasks = list(handlers)
        for t, writer in list(handlers.items()):
            writer.transport.abort()
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    return server.sockets[0].getsockname(), close


SERVERS = {"sock": serve_sock, "protocol": serve_protocol, "streams": serve_streams}


async def main(args, name):
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        tls = server_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    except (OSError, ssl.SSLError) as e:
        print(f"{name}: cannot load {args.tls_cert} / {args.tls_key}: {e}", file=sys.stderr,
              flush=True)
        return 1
    try:
        sockname, close = await SERVERS[args.mode](args.host, args.port, tls)
    except OSError as e:
        print(f"{name}: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr, flush=True)
        return 1
    print(f"{name}: listening on {format_addr(sockname)}", flush=True)
    await stopping.wait()
    await close()
    print(f"{name}: stopped", flush=True)
    return 0


def run():
    args = parse_args()
    name = f"echo-{args.loop}"
    return run_on_loop(args, main(args, name), name)


if __name__ == "__main__":
    sys.exit(run())
