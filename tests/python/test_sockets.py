"""sock_accept, sock_connect, sock_sendall, sock_recv, sock_recv_into over 127.0.0.1, on every
loop (see conftest.py). Sockets are non-blocking, as asyncio requires."""

import asyncio
import socket
import struct

import pytest

from conftest import cancel_while_pending, run


def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    return srv


def client():
    c = socket.socket()
    c.setblocking(False)
    return c


async def connected_pair(loop, srv):
    c = client()
    accepting = asyncio.ensure_future(loop.sock_accept(srv))
    await loop.sock_connect(c, srv.getsockname())
    s, addr = await accepting
    return c, s, addr


def test_a_round_trip_through_accept_connect_sendall_and_recv(loop):
    srv = listener()

    async def main():
        c, s, addr = await connected_pair(loop, srv)
        with c, s:
            assert addr == c.getsockname()
            assert s.gettimeout() == 0
            await loop.sock_sendall(c, b"hello")
            got = b""
            while len(got) < 5:
                got += await loop.sock_recv(s, 100)
            buf = bytearray(16)
            await loop.sock_sendall(s, b"world")
            n = 0
            while n < 5:
                n += await loop.sock_recv_into(c, memoryview(buf)[n:])
            c.shutdown(socket.SHUT_WR)
            eof = await loop.sock_recv(s, 100)
            return got, bytes(buf[:n]), eof

    with srv:
        assert run(loop, main()) == (b"hello", b"world", b"")


def test_sendall_sends_more_than_the_socket_buffer(loop):
    srv = listener()
    payload = bytes(range(256)) * 8192  # 2 MiB

    async def main():
        c, s, _ = await connected_pair(loop, srv)
        with c, s:
            sending = asyncio.ensure_future(loop.sock_sendall(c, payload))
            got = bytearray()
            while len(got) < len(payload):
                chunk = await loop.sock_recv(s, 65536)
                assert chunk
                got += chunk
            assert await sending is None
            return bytes(got) == payload

    with srv:
        assert run(loop, main())


def test_a_refused_connect_is_connection_refused_error(loop):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    address = closed.getsockname()
    closed.close()  # bound, never listened, now closed: nobody is there

    async def main():
        with client() as c:
            with pytest.raises(ConnectionRefusedError):
                await loop.sock_connect(c, address)

    run(loop, main())


def test_a_peer_reset_is_connection_reset_error(loop):
    srv = listener()

    async def main():
        c, s, _ = await connected_pair(loop, srv)
        with s:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()  # RST
            with pytest.raises(ConnectionResetError):
                while await loop.sock_recv(s, 100):
                    pass

    with srv:
        run(loop, main())


def test_cancelling_a_pending_recv_leaves_the_socket_usable(loop):
    srv = listener()

    async def main():
        c, s, _ = await connected_pair(loop, srv)
        with c, s:
            await cancel_while_pending(loop.sock_recv(s, 100))
            await loop.sock_sendall(c, b"after")
            return await loop.sock_recv(s, 100)

    with srv:
        assert run(loop, main()) == b"after"


def test_cancelling_a_pending_accept(loop):
    srv = listener()

    async def main():
        pending = asyncio.ensure_future(loop.sock_accept(srv))
        await asyncio.sleep(0.02)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        await asyncio.sleep(0.01)
        c, s, _ = await connected_pair(loop, srv)
        c.close()
        s.close()

    with srv:
        run(loop, main())


def test_blocking_sockets_are_refused(loop):
    loop.set_debug(True)  # asyncio checks in debug mode only; aloop always does
    srv = socket.socket()

    async def main():
        with pytest.raises(ValueError, match="the socket must be non-blocking"):
            await loop.sock_recv(srv, 10)

    with srv:
        run(loop, main())
    loop.set_debug(False)


def test_closing_a_loop_with_a_recv_in_flight(loop_kind, loop):
    srv = listener()

    async def start():
        c, s, _ = await connected_pair(loop, srv)
        pending = asyncio.ensure_future(loop.sock_recv(s, 100))
        await asyncio.sleep(0.01)
        return c, s, pending

    with srv:
        c, s, pending = run(loop, start())
        loop.close()
        c.close()
        s.close()
        assert not pending.done()  # nobody runs it any more; dropping it is all there is to do
