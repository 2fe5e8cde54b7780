"""sock_recvfrom, sock_recvfrom_into and sock_sendto over UDP on 127.0.0.1 (and ::1 where it
works), on every loop (see conftest.py). Sockets are non-blocking, as asyncio requires."""

import socket

import pytest

from conftest import cancel_while_pending, run

pytestmark = pytest.mark.uvloop_differs("no sock_recvfrom, sock_recvfrom_into, sock_sendto: "
                                        "NotImplementedError")


def ipv6_works():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


FAMILIES = [pytest.param((socket.AF_INET, "127.0.0.1"), id="ipv4"),
            pytest.param((socket.AF_INET6, "::1"), id="ipv6",
                         marks=pytest.mark.skipif(not ipv6_works(), reason="no ::1 here"))]


def udp(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.setblocking(False)
    return s


@pytest.mark.parametrize("family", FAMILIES)
def test_datagrams_both_ways_with_their_senders(loop, family):
    a, b = udp(*family), udp(*family)

    async def main():
        sent = await loop.sock_sendto(a, b"ping", b.getsockname())
        data, sender = await loop.sock_recvfrom(b, 100)
        assert await loop.sock_sendto(b, b"pong!", sender) == 5
        buf = bytearray(16)
        n, back = await loop.sock_recvfrom_into(a, buf)
        return sent, data, sender, bytes(buf[:n]), back

    with a, b:
        assert run(loop, main()) == (4, b"ping", a.getsockname(), b"pong!", b.getsockname())


def test_a_long_datagram_is_cut_to_the_size_asked_for(loop):
    a, b = udp(), udp()

    async def main():
        await loop.sock_sendto(a, b"0123456789", b.getsockname())
        data, _ = await loop.sock_recvfrom(b, 4)
        await loop.sock_sendto(a, b"abcdefghij", b.getsockname())
        buf = bytearray(8)
        n, _ = await loop.sock_recvfrom_into(b, buf, 3)
        return data, n, bytes(buf)

    with a, b:
        assert run(loop, main()) == (b"0123", 3, b"abc\0\0\0\0\0")


def test_an_empty_datagram(loop):
    a, b = udp(), udp()

    async def main():
        assert await loop.sock_sendto(a, b"", b.getsockname()) == 0
        return await loop.sock_recvfrom(b, 10)

    with a, b:
        assert run(loop, main()) == (b"", a.getsockname())


def test_recvfrom_into_refuses_what_socket_recvfrom_into_refuses(loop):
    a = udp()

    async def main():
        with pytest.raises(ValueError, match="nbytes is greater than the length of the buffer"):
            await loop.sock_recvfrom_into(a, bytearray(4), 5)
        with pytest.raises(ValueError, match="negative buffersize in recvfrom_into"):
            await loop.sock_recvfrom_into(a, bytearray(4), -1)
        with pytest.raises(ValueError, match="negative buffersize in recvfrom"):
            await loop.sock_recvfrom(a, -1)
        with pytest.raises(TypeError, match="recvfrom_into.. argument 1 must be read-write"):
            await loop.sock_recvfrom_into(a, b"read-only")
        with pytest.raises(TypeError, match="a bytes-like object is required, not 'str'"):
            await loop.sock_sendto(a, "text", a.getsockname())

    with a:
        run(loop, main())


def test_cancelling_a_pending_recvfrom_leaves_the_socket_usable(loop):
    a, b = udp(), udp()

    async def main():
        await cancel_while_pending(loop.sock_recvfrom(b, 100))
        await loop.sock_sendto(a, b"after", b.getsockname())
        return await loop.sock_recvfrom(b, 100)

    with a, b:
        assert run(loop, main()) == (b"after", a.getsockname())


def test_sendto_a_connected_peer_that_is_gone_then_recvfrom_fails(loop):
    gone = udp()
    address = gone.getsockname()
    gone.close()
    a = udp()

    async def main():
        a.connect(address)
        await loop.sock_sendto(a, b"x", address)
        with pytest.raises(ConnectionRefusedError):
            await loop.sock_recvfrom(a, 10)

    with a:
        run(loop, main())


def test_blocking_datagram_sockets_are_refused(loop):
    loop.set_debug(True)  # asyncio checks in debug mode only; aloop always does
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    async def main():
        with pytest.raises(ValueError, match="the socket must be non-blocking"):
            await loop.sock_recvfrom(s, 10)
        with pytest.raises(ValueError, match="the socket must be non-blocking"):
            await loop.sock_sendto(s, b"x", ("127.0.0.1", 9))

    with s:
        run(loop, main())
    loop.set_debug(False)
