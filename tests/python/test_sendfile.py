"""sock_sendfile over a loopback TCP pair, on every loop (see conftest.py): what arrives, what it
returns and where it leaves the file's position, and asyncio's checks."""

import asyncio
import io
import os
import socket

import pytest

from conftest import run
from test_sockets import connected_pair, listener

pytestmark = pytest.mark.uvloop_differs("no sock_sendfile: NotImplementedError")

SIZE = 3 * 1024 * 1024 + 12345


@pytest.fixture
def data_file(tmp_path):
    content = os.urandom(SIZE)
    path = tmp_path / "data"
    path.write_bytes(content)
    with open(path, "rb") as f:
        yield f, content


async def receive(loop, s, n):
    got = bytearray()
    while len(got) < n:
        chunk = await loop.sock_recv(s, 65536)
        assert chunk, "the stream ended early"
        got += chunk
    return bytes(got)


def send_and_receive(loop, file, expected_len, **kwargs):
    srv = listener()

    async def main():
        c, s, _ = await connected_pair(loop, srv)
        with c, s:
            receiving = asyncio.ensure_future(receive(loop, s, expected_len))
            sent = await loop.sock_sendfile(c, file, **kwargs)
            got = await receiving
            c.shutdown(socket.SHUT_WR)
            assert await loop.sock_recv(s, 10) == b""
            return sent, got

    with srv:
        return run(loop, main())


def test_a_whole_file(loop, data_file):
    f, content = data_file
    assert send_and_receive(loop, f, SIZE) == (SIZE, content)
    assert f.tell() == SIZE


def test_offset_and_count(loop, data_file):
    f, content = data_file
    offset, count = 1000, 2 * 1024 * 1024
    assert send_and_receive(loop, f, count, offset=offset, count=count) == \
        (count, content[offset:offset + count])
    assert f.tell() == offset + count


def test_a_count_past_the_end_sends_up_to_the_end(loop, data_file):
    f, content = data_file
    offset = SIZE - 5000
    assert send_and_receive(loop, f, 5000, offset=offset, count=SIZE) == (5000, content[offset:])
    assert f.tell() == SIZE


def test_an_empty_file_sends_nothing_and_leaves_the_position(loop, tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with open(path, "rb") as f:
        assert send_and_receive(loop, f, 0) == (0, b"")
        assert f.tell() == 0


def test_what_is_not_a_regular_file_is_read_and_sent_unless_fallback_is_false(loop):
    content = os.urandom(100000)
    f = io.BytesIO(content)
    assert send_and_receive(loop, f, 60000, offset=40000) == (60000, content[40000:])
    assert f.tell() == 100000

    srv = listener()

    async def main():
        c, s, _ = await connected_pair(loop, srv)
        with c, s:
            with pytest.raises(asyncio.SendfileNotAvailableError):
                await loop.sock_sendfile(c, io.BytesIO(b"x"), fallback=False)

    with srv:
        run(loop, main())


def test_asyncio_s_checks(loop, data_file, tmp_path):
    f, _ = data_file
    text = tmp_path / "text"
    text.write_text("text")
    loop.set_debug(True)  # asyncio refuses blocking sockets in debug mode only; aloop always does

    async def main():
        with socket.socket() as blocking:
            with pytest.raises(ValueError, match="the socket must be non-blocking"):
                await loop.sock_sendfile(blocking, f)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.setblocking(False)
            with pytest.raises(ValueError, match="only SOCK_STREAM type sockets are supported"):
                await loop.sock_sendfile(udp, f)
        with socket.socket() as tcp, open(text) as t:
            tcp.setblocking(False)
            with pytest.raises(ValueError, match="file should be opened in binary mode"):
                await loop.sock_sendfile(tcp, t)
            with pytest.raises(ValueError, match=r"count must be a positive integer \(got 0\)"):
                await loop.sock_sendfile(tcp, f, 0, 0)
            with pytest.raises(TypeError, match=r"count must be a positive integer \(got '1'\)"):
                await loop.sock_sendfile(tcp, f, 0, "1")
            with pytest.raises(ValueError, match=r"offset must be a non-negative integer \(got -1\)"):
                await loop.sock_sendfile(tcp, f, -1)
            with pytest.raises(TypeError, match=r"offset must be a non-negative integer \(got 1.5\)"):
                await loop.sock_sendfile(tcp, f, 1.5)

    run(loop, main())
    loop.set_debug(False)
    assert f.tell() == 0
