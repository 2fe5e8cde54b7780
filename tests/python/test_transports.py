"""Stream transports on every loop (see conftest.py): create_connection/create_server, Unix
sockets, connect_accepted_socket, streams, flow control, half-close, abort and reset, protocol
failures, Server objects, TLS and start_tls, sendfile. Loopback only; the same assertions on
every loop, so what asyncio's own loop does is what each loop must do."""

import asyncio
import io
import logging
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile

import pytest

from conftest import run

HOST = "127.0.0.1"
MiB = 1024 * 1024


def pattern(n, seed=0):
    """n bytes that are not periodic at any small scale: misordered or lost bytes show."""
    out = bytearray()
    i = seed
    while len(out) < n:
        out += struct.pack("<Q", (i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
        i += 1
    return bytes(out[:n])


class Recorder(asyncio.Protocol):
    """Records what the transport calls, in order ("data" once for consecutive data_received;
    pause_writing and resume_writing in flow);
    futures for the moments a test waits for."""

    def __init__(self, loop, eof_result=None):
        self.loop = loop
        self.eof_result = eof_result
        self.events = []
        self.flow = []  # pause_writing and resume_writing, apart from the other calls
        self.data = bytearray()
        self.data_types = set()
        self.transport = None
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self.paused = loop.create_future()
        self.resumed = loop.create_future()
        self.size_at_pause = self.size_at_resume = None
        self._waiters = []

    def _event(self, name):
        if not (name == "data" and self.events and self.events[-1] == "data"):
            self.events.append(name)

    def _wake(self):
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def connection_made(self, transport):
        self._event("made")
        self.transport = transport
        self.made.set_result(transport)

    def data_received(self, data):
        self._event("data")
        self.data_types.add(type(data))
        self.data += data
        self._wake()

    def eof_received(self):
        self._event("eof")
        self.eof.set_result(None)
        self._wake()
        return self.eof_result

    def connection_lost(self, exc):
        self._event("lost")
        self.lost.set_result(exc)
        self._wake()

    def pause_writing(self):
        self.flow.append("pause")
        self.size_at_pause = self.transport.get_write_buffer_size()
        if not self.paused.done():
            self.paused.set_result(None)

    def resume_writing(self):
        self.flow.append("resume")
        self.size_at_resume = self.transport.get_write_buffer_size()
        if not self.resumed.done():
            self.resumed.set_result(None)

    async def wait_for_data(self, n):
        """Until n bytes have come (AssertionError if the stream ends first)."""
        while len(self.data) < n:
            assert not self.eof.done() and not self.lost.done(), \
                f"the stream ended after {len(self.data)} of {n} bytes"
            w = self.loop.create_future()
            self._waiters.append(w)
            await w
        return bytes(self.data)


class Echo(Recorder):
    """A Recorder that writes back what it receives."""

    def data_received(self, data):
        super().data_received(data)
        self.transport.write(data)


def catch_errors(loop):
    """Install an exception handler that keeps each context; returns their list."""
    contexts = []
    loop.set_exception_handler(lambda lp, context: contexts.append(context))
    return contexts


class Accepted:
    """A protocol factory for a server: the protocols it made, and a future for the first."""

    def __init__(self, loop, cls=Recorder, **kwargs):
        self.loop, self.cls, self.kwargs = loop, cls, kwargs
        self.protocols = []
        self.first = loop.create_future()

    def __call__(self):
        p = self.cls(self.loop, **self.kwargs)
        self.protocols.append(p)
        if not self.first.done():
            self.first.set_result(p)
        return p


async def close_server(server):
    """Close server and wait until its connections are closed too: a wait_closed() that starts
    before close() waits for the last connection (after close() it returns at once in 3.11)."""
    waiting = asyncio.ensure_future(server.wait_closed())
    await asyncio.sleep(0)
    server.close()
    await waiting


def small_listener():
    """A listening socket whose connections have small kernel buffers (so that a transport's own
    buffer fills up after a few KiB when the peer does not read)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    s.bind((HOST, 0))
    s.listen(8)
    s.setblocking(False)
    return s


async def small_client(loop, address):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    c.setblocking(False)
    try:
        await loop.sock_connect(c, address)
    except BaseException:
        c.close()
        raise
    return c


async def small_pair(loop, client_cls=Recorder, server_cls=Recorder):
    """A server and one connection to it, both ends with small kernel buffers:
    (server, client transport, client protocol, server protocol)."""
    accepted = Accepted(loop, server_cls)
    server = await loop.create_server(accepted, sock=small_listener())
    csock = await small_client(loop, server.sockets[0].getsockname())
    ct, cp = await loop.create_connection(lambda: client_cls(loop), sock=csock)
    sp = await accepted.first
    await sp.made
    return server, ct, cp, sp


async def connect(loop, server, cls=Recorder, **kwargs):
    """A connection to server's first address: (client transport, client protocol)."""
    return await loop.create_connection(lambda: cls(loop), *server.sockets[0].getsockname(),
                                        **kwargs)


# ---- 1. protocol echo ---------------------------------------------------------------------------

def test_echo_of_many_messages_and_a_big_one_with_the_protocol_calls_in_order(loop):
    messages = [f"message {i:04d};".encode() for i in range(1000)]
    big = pattern(4 * MiB, seed=7)
    expected = b"".join(messages) + big

    async def main():
        errors = catch_errors(loop)
        accepted = Accepted(loop, Echo)
        server = await loop.create_server(accepted, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        ct, cp = await loop.create_connection(lambda: Recorder(loop), HOST, port)
        assert await cp.made is ct
        for m in messages:
            ct.write(m)
        ct.write(big)
        ct.write_eof()
        assert await cp.lost is None
        sp = accepted.first.result()
        assert await sp.lost is None
        assert await sp.made is not None
        assert bytes(sp.data) == expected
        assert bytes(cp.data) == expected
        assert cp.data_types == sp.data_types == {bytes}
        assert cp.events == ["made", "data", "eof", "lost"]
        assert sp.events == ["made", "data", "eof", "lost"]
        assert ct.is_closing() and sp.transport.is_closing()
        assert len(accepted.protocols) == 1
        await close_server(server)
        assert errors == []

    run(loop, main())


# ---- 2. BufferedProtocol ------------------------------------------------------------------------

class SmallBuffers(asyncio.BufferedProtocol):
    """Receives into 100-byte slices of one bytearray."""

    def __init__(self, loop):
        self.buf = bytearray(4096)
        self.got = bytearray()
        self.events = []
        self.hints = set()
        self.biggest = 0
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport

    def get_buffer(self, sizehint):
        self.hints.add(type(sizehint))
        return memoryview(self.buf)[1000:1100]

    def buffer_updated(self, nbytes):
        if self.events[-1] != "data":
            self.events.append("data")
        self.biggest = max(self.biggest, nbytes)
        self.got += self.buf[1000:1000 + nbytes]

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


def test_a_buffered_protocol_with_100_byte_buffers_receives_8_mib_in_order(loop):
    payload = pattern(8 * MiB, seed=3)

    async def main():
        errors = catch_errors(loop)
        accepted = Accepted(loop, SmallBuffers)
        server = await loop.create_server(accepted, HOST, 0)
        ct, cp = await connect(loop, server)
        ct.write(payload)
        ct.write_eof()
        sp = await accepted.first
        assert await sp.lost is None
        assert await cp.lost is None  # the server closed after eof_received returned None
        assert sp.events == ["made", "data", "eof", "lost"]
        assert cp.events == ["made", "eof", "lost"]
        assert len(sp.got) == len(payload)
        assert bytes(sp.got) == payload
        assert sp.hints == {int}
        assert 0 < sp.biggest <= 100
        await close_server(server)
        assert errors == []

    run(loop, main())


# ---- 3. streams ---------------------------------------------------------------------------------

def test_streams_readline_readexactly_write_eof_and_at_eof(loop):
    async def main():
        seen = loop.create_future()

        async def handle(reader, writer):
            try:
                got = [await reader.readline(), await reader.readline(),
                       await reader.readexactly(10), await reader.read(), reader.at_eof()]
                writer.write(b"reply\n")
                writer.write(b"partial")
                assert writer.can_write_eof()
                writer.write_eof()
                await writer.drain()
                seen.set_result(got)
            except BaseException as exc:
                seen.set_exception(exc)
            finally:
                writer.close()
                await writer.wait_closed()

        server = await asyncio.start_server(handle, HOST, 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.write(b"line one\nline two\n")
        writer.writelines([b"0123", b"456789", b"tail"])
        assert writer.can_write_eof()
        writer.write_eof()
        assert await seen == [b"line one\n", b"line two\n", b"0123456789", b"tail", True]
        assert not reader.at_eof()
        assert await reader.readline() == b"reply\n"
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader.readexactly(10)
        assert info.value.partial == b"partial" and info.value.expected == 10
        assert reader.at_eof()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        await close_server(server)

    run(loop, main())


def test_stream_drain_waits_for_a_slow_reader_and_bounds_the_buffer(loop):
    high, chunk, total = 65536, 16384, 4 * MiB
    payload = pattern(total, seed=11)

    async def main():
        start_reading = loop.create_future()
        got = loop.create_future()

        async def handle(reader, writer):
            try:
                await start_reading  # nothing is read before the writer pauses
                data = await reader.readexactly(total)
                got.set_result((data, await reader.read(), reader.at_eof()))
            except BaseException as exc:
                got.set_exception(exc)
            finally:
                writer.close()
                await writer.wait_closed()

        lsock = small_listener()
        server = await asyncio.start_server(handle, sock=lsock)
        csock = await small_client(loop, lsock.getsockname())
        reader, writer = await asyncio.open_connection(sock=csock)
        transport = writer.transport
        transport.set_write_buffer_limits(high=high)
        assert transport.get_write_buffer_limits() == (high // 4, high)
        proto = transport.get_protocol()
        sizes_at_pause = []
        pause_writing = proto.pause_writing

        def pausing():
            sizes_at_pause.append(transport.get_write_buffer_size())
            if not start_reading.done():
                start_reading.set_result(None)
            pause_writing()

        proto.pause_writing = pausing
        sizes = []
        for off in range(0, total, chunk):
            writer.write(payload[off:off + chunk])
            sizes.append(transport.get_write_buffer_size())
            await writer.drain()
        writer.write_eof()
        data, rest, at_eof = await got
        assert len(data) == total and data == payload
        assert rest == b"" and at_eof
        assert sizes_at_pause, "pause_writing was never called"
        assert all(s > high for s in sizes_at_pause)
        assert max(sizes) > high
        assert max(sizes) <= high + chunk
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        await close_server(server)

    run(loop, main())


# ---- 4. flow control ----------------------------------------------------------------------------

@pytest.mark.uvloop_differs("its default low-water mark is 16 bytes, not 16 KiB")
def test_write_buffer_limits_as_asyncio_sets_and_checks_them(loop):
    async def main():
        accepted = Accepted(loop)
        server = await loop.create_server(accepted, HOST, 0)
        ct, cp = await connect(loop, server)
        assert ct.get_write_buffer_limits() == (16384, 65536)
        assert ct.get_write_buffer_size() == 0
        ct.set_write_buffer_limits(high=1000, low=100)
        assert ct.get_write_buffer_limits() == (100, 1000)
        ct.set_write_buffer_limits(high=800)
        assert ct.get_write_buffer_limits() == (200, 800)
        ct.set_write_buffer_limits(low=300)
        assert ct.get_write_buffer_limits() == (300, 1200)
        ct.set_write_buffer_limits(high=0)
        assert ct.get_write_buffer_limits() == (0, 0)
        with pytest.raises(ValueError, match=re.escape("high (1) must be >= low (2) must be >= 0")):
            ct.set_write_buffer_limits(high=1, low=2)
        with pytest.raises(ValueError,
                           match=re.escape("high (4) must be >= low (-1) must be >= 0")):
            ct.set_write_buffer_limits(high=4, low=-1)
        assert ct.get_write_buffer_limits() == (0, 0)
        ct.set_write_buffer_limits()
        assert ct.get_write_buffer_limits() == (16384, 65536)
        ct.close()
        await cp.lost
        await close_server(server)

    run(loop, main())


def test_pause_writing_when_the_peer_does_not_read_and_resume_writing_when_it_does(loop):
    payload = pattern(4 * MiB, seed=5)

    async def main():
        errors = catch_errors(loop)
        server, ct, cp, sp = await small_pair(loop)
        sp.transport.pause_reading()
        assert not sp.transport.is_reading()
        ct.set_write_buffer_limits(high=65536, low=16384)
        ct.write(payload)
        await cp.paused
        assert bytes(sp.data) == b""  # nothing is delivered while reading is paused
        assert cp.size_at_pause > 65536
        assert ct.get_write_buffer_size() > 65536
        assert not cp.resumed.done()
        sp.transport.resume_reading()
        assert sp.transport.is_reading()
        await cp.resumed
        assert cp.size_at_resume <= 16384
        assert await sp.wait_for_data(len(payload)) == payload
        assert cp.flow == ["pause", "resume"]
        assert cp.events == ["made"]
        ct.close()
        assert await cp.lost is None
        assert await sp.lost is None
        assert ct.get_write_buffer_size() == 0
        await close_server(server)
        assert errors == []

    run(loop, main())


# ---- 5. half-close ------------------------------------------------------------------------------

def test_eof_received_returning_true_keeps_the_transport_open_to_write_back(loop):
    async def main():
        errors = catch_errors(loop)
        accepted = Accepted(loop, eof_result=True)
        server = await loop.create_server(accepted, HOST, 0)
        ct, cp = await connect(loop, server)
        assert ct.can_write_eof()
        ct.write(b"request")
        ct.write_eof()
        assert ct.is_closing() is False
        sp = await accepted.first
        await sp.eof
        assert bytes(sp.data) == b"request"
        assert not sp.transport.is_closing()
        sp.transport.write(b"response after eof")
        sp.transport.close()
        assert await cp.lost is None
        assert await sp.lost is None
        assert bytes(cp.data) == b"response after eof"
        assert cp.events == ["made", "data", "eof", "lost"]
        assert sp.events == ["made", "data", "eof", "lost"]
        await close_server(server)
        assert errors == []

    run(loop, main())


def test_eof_received_returning_none_closes_the_transport(loop):
    async def main():
        errors = catch_errors(loop)
        accepted = Accepted(loop, eof_result=None)
        server = await loop.create_server(accepted, HOST, 0)
        ct, cp = await loop.create_connection(lambda: Recorder(loop, eof_result=True),
                                              *server.sockets[0].getsockname())
        ct.write(b"request")
        ct.write_eof()
        sp = await accepted.first
        assert await sp.lost is None
        assert sp.transport.is_closing()
        await cp.eof  # the server's close is the client's eof; it keeps its end open
        assert not ct.is_closing()
        assert cp.events == ["made", "eof"]
        ct.close()
        assert await cp.lost is None
        assert sp.events == ["made", "data", "eof", "lost"]
        assert cp.events == ["made", "eof", "lost"]
        await close_server(server)
        assert errors == []

    run(loop, main())


# ---- 6. abort -----------------------------------------------------------------------------------

def test_abort_with_queued_data_drops_it_and_ends_the_connection(loop):
    payload = pattern(4 * MiB, seed=9)

    async def main():
        errors = catch_errors(loop)
        server, ct, cp, sp = await small_pair(loop)
        sp.transport.pause_reading()
        ct.write(payload)
        await cp.paused  # data is queued in the transport
        assert bytes(sp.data) == b""
        assert ct.get_write_buffer_size() > 0
        ct.abort()
        assert ct.is_closing()
        assert await cp.lost is None
        assert cp.flow == ["pause"]
        assert cp.events == ["made", "lost"]
        assert ct.get_write_buffer_size() == 0
        sp.transport.resume_reading()
        assert await sp.lost is None
        assert sp.events == ["made", "data", "eof", "lost"]
        assert 0 < len(sp.data) < len(payload)
        assert bytes(sp.data) == payload[:len(sp.data)]
        await close_server(server)
        assert errors == []

    run(loop, main())


# ---- 7. peer reset ------------------------------------------------------------------------------

def rst_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_peer_reset_reaches_a_server_protocol_as_connection_reset_error(loop):
    async def main():
        errors = catch_errors(loop)
        accepted = Accepted(loop)
        server = await loop.create_server(accepted, HOST, 0)
        raw = socket.socket()
        raw.setblocking(False)
        try:
            await loop.sock_connect(raw, server.sockets[0].getsockname())
            await loop.sock_sendall(raw, b"hello")
            sp = await accepted.first
            assert await sp.wait_for_data(5) == b"hello"
        finally:
            rst_close(raw)
        exc = await sp.lost
        assert type(exc) is ConnectionResetError
        assert sp.events == ["made", "data", "lost"]
        assert sp.transport.is_closing()
        await close_server(server)
        assert errors == []  # an OSError is not reported (outside debug mode)

    run(loop, main())


def test_a_peer_reset_reaches_a_client_protocol_as_connection_reset_error(loop):
    async def main():
        errors = catch_errors(loop)
        with socket.socket() as lsock:
            lsock.bind((HOST, 0))
            lsock.listen(1)
            lsock.setblocking(False)
            accepting = asyncio.ensure_future(loop.sock_accept(lsock))
            ct, cp = await loop.create_connection(lambda: Recorder(loop), *lsock.getsockname())
            raw, _ = await accepting
            try:
                ct.write(b"hello")
                got = b""
                while len(got) < 5:
                    got += await loop.sock_recv(raw, 100)
                assert got == b"hello"
            finally:
                rst_close(raw)
        exc = await cp.lost
        assert type(exc) is ConnectionResetError
        assert cp.events == ["made", "lost"]
        assert ct.is_closing()
        assert errors == []

    run(loop, main())


# ---- 8. protocol failures -----------------------------------------------------------------------

class FailsOnData(Recorder):
    def data_received(self, data):
        super().data_received(data)
        raise ZeroDivisionError("data_received failed")


@pytest.mark.uvloop_differs("its message is 'Fatal error on transport TCPTransport'")
def test_an_exception_in_data_received_goes_to_the_handler_and_to_connection_lost(loop):
    async def main():
        errors = catch_errors(loop)
        accepted = Accepted(loop, FailsOnData)
        server = await loop.create_server(accepted, HOST, 0)
        ct, cp = await connect(loop, server)
        ct.write(b"boom")
        sp = await accepted.first
        exc = await sp.lost
        assert type(exc) is ZeroDivisionError and str(exc) == "data_received failed"
        assert sp.events == ["made", "data", "lost"]
        assert len(errors) == 1
        context = errors[0]
        assert context["message"] == "Fatal error: protocol.data_received() call failed."
        assert context["exception"] is exc
        assert context["protocol"] is sp
        assert context["transport"] is sp.transport
        assert await cp.lost is None  # the server closed its end: the client sees an eof
        assert cp.events == ["made", "eof", "lost"]
        await close_server(server)

    run(loop, main())


class FailsInGetBuffer(asyncio.BufferedProtocol):
    def __init__(self, loop, empty):
        self.empty = empty
        self.lost = loop.create_future()
        self.updated = []

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        if self.empty:
            return bytearray()
        raise LookupError("no buffer")

    def buffer_updated(self, nbytes):
        self.updated.append(nbytes)

    def connection_lost(self, exc):
        self.lost.set_result(exc)


@pytest.mark.uvloop_differs("RuntimeError('unhandled error (or an empty buffer) in get_buffer()') "
                            "instead of the protocol's exception")
@pytest.mark.parametrize("empty", [False, True], ids=["raises", "empty"])
def test_a_failing_get_buffer_goes_to_the_handler_and_to_connection_lost(loop, empty):
    async def main():
        errors = catch_errors(loop)
        accepted = Accepted(loop, FailsInGetBuffer, empty=empty)
        server = await loop.create_server(accepted, HOST, 0)
        ct, cp = await connect(loop, server)
        ct.write(b"data")
        sp = await accepted.first
        exc = await sp.lost
        await cp.lost
        await close_server(server)
        if empty:
            assert type(exc) is RuntimeError
            assert str(exc) == "get_buffer() returned an empty buffer"
        else:
            assert type(exc) is LookupError and str(exc) == "no buffer"
        assert sp.updated == []
        assert len(errors) == 1
        assert errors[0]["message"] == "Fatal error: protocol.get_buffer() call failed."
        assert errors[0]["exception"] is exc
        assert errors[0]["protocol"] is sp

    run(loop, main())


# ---- 9. connecting ------------------------------------------------------------------------------

def closed_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()  # bound, never listened, closed: nobody is there
    return port


async def refused(loop, address):
    """Whether a connection to address is refused (one that is not is closed again)."""
    try:
        t, p = await loop.create_connection(lambda: Recorder(loop), *address)
    except ConnectionRefusedError:
        return True
    t.close()
    await p.lost
    return False


def test_create_connection_to_a_closed_port_is_connection_refused_error(loop):
    port = closed_port()

    async def main():
        with pytest.raises(ConnectionRefusedError) as info:
            await loop.create_connection(lambda: Recorder(loop), HOST, port)
        assert info.value.errno == 111

    run(loop, main())


@pytest.mark.uvloop_differs("its message is strerror's, not 'Connect call failed (address)'")
def test_create_connection_refused_has_asyncio_s_message(loop):
    port = closed_port()

    async def main():
        with pytest.raises(ConnectionRefusedError) as info:
            await loop.create_connection(lambda: Recorder(loop), HOST, port)
        assert str(info.value) == f"[Errno 111] Connect call failed ('{HOST}', {port})"

    run(loop, main())


@pytest.mark.uvloop_differs("the cancelled connection's protocol never gets connection_lost")
def test_create_connection_cancelled_while_waiting_for_connection_made(loop):
    """The protocol factory runs just before the transport is made; the task is cancelled from
    there, so it is cancelled while it waits for the transport's waiter."""
    async def main():
        errors = catch_errors(loop)
        accepted = Accepted(loop)
        server = await loop.create_server(accepted, HOST, 0)
        made = []

        def factory():
            p = Recorder(loop)
            made.append(p)
            loop.call_soon(task.cancel)
            return p

        task = asyncio.ensure_future(loop.create_connection(factory,
                                                            *server.sockets[0].getsockname()))
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(made) == 1
        p = made[0]
        assert await p.lost is None
        assert p.events == ["made", "lost"]
        sp = await accepted.first
        await sp.lost
        await close_server(server)
        assert errors == []

    run(loop, main())


# ---- 10. extra info -----------------------------------------------------------------------------

def test_get_extra_info_peername_sockname_socket_and_default(loop):
    async def main():
        accepted = Accepted(loop)
        server = await loop.create_server(accepted, HOST, 0)
        server_address = server.sockets[0].getsockname()
        ct, cp = await loop.create_connection(lambda: Recorder(loop), *server_address)
        sp = await accepted.first
        st = await sp.made
        client_address = ct.get_extra_info("sockname")
        assert client_address[0] == HOST and client_address[1] > 0
        assert ct.get_extra_info("peername") == server_address
        assert st.get_extra_info("sockname") == server_address
        assert st.get_extra_info("peername") == client_address
        for t, name in ((ct, client_address), (st, server_address)):
            sock = t.get_extra_info("socket")
            assert sock.family == socket.AF_INET
            assert sock.type == socket.SOCK_STREAM
            assert sock.getsockname() == name
            assert sock.fileno() >= 0
            assert t.get_extra_info("no such thing") is None
            assert t.get_extra_info("no such thing", 42) == 42
            assert t.get_extra_info("sslcontext") is None
        assert ct.get_protocol() is cp and st.get_protocol() is sp
        ct.close()
        await cp.lost
        await sp.lost
        await close_server(server)

    run(loop, main())


# ---- set_protocol -------------------------------------------------------------------------------

class Switcher(Recorder):
    """Replies b"ok" to b"switch" and hands the transport over to `then`."""

    def __init__(self, loop, then):
        super().__init__(loop)
        self.then = then

    def data_received(self, data):
        super().data_received(data)
        if bytes(self.data) == b"switch":
            self.transport.set_protocol(self.then)
            self.transport.write(b"ok")


class Collect(asyncio.BufferedProtocol):
    def __init__(self, loop):
        self.buf = bytearray(64)
        self.got = bytearray()
        self.eof = loop.create_future()
        self.lost = loop.create_future()

    def get_buffer(self, sizehint):
        return self.buf

    def buffer_updated(self, nbytes):
        self.got += self.buf[:nbytes]

    def eof_received(self):
        self.eof.set_result(None)

    def connection_lost(self, exc):
        self.lost.set_result(exc)


def test_set_protocol_hands_the_stream_to_a_buffered_protocol(loop):
    async def main():
        errors = catch_errors(loop)
        then = Collect(loop)
        accepted = Accepted(loop, Switcher, then=then)
        server = await loop.create_server(accepted, HOST, 0)
        ct, cp = await connect(loop, server)
        ct.write(b"switch")
        assert await cp.wait_for_data(2) == b"ok"
        sp = accepted.first.result()
        assert sp.transport.get_protocol() is then
        ct.write(b"after the switch")
        ct.write_eof()
        assert await then.lost is None
        assert bytes(then.got) == b"after the switch"
        assert bytes(sp.data) == b"switch"
        assert sp.events == ["made", "data"]
        assert await cp.lost is None
        await close_server(server)
        assert errors == []

    run(loop, main())


# ---- 11. Server objects -------------------------------------------------------------------------

@pytest.mark.uvloop_differs("a closed server's sockets is [], not ()")
def test_server_sockets_is_serving_get_loop_and_async_with(loop):
    async def main():
        accepted = Accepted(loop)
        server = await loop.create_server(accepted, HOST, 0)
        assert server.get_loop() is loop
        assert server.is_serving()
        assert len(server.sockets) == 1
        sock = server.sockets[0]
        assert sock.family == socket.AF_INET and sock.getsockname()[0] == HOST
        address = sock.getsockname()
        async with server as same:
            assert same is server
            ct, cp = await loop.create_connection(lambda: Recorder(loop), *address)
            ct.close()
            await cp.lost
            await (await accepted.first).lost
        assert not server.is_serving()
        assert server.sockets == ()
        assert await refused(loop, address)

    run(loop, main())


def test_server_start_serving_false_then_start_serving(loop):
    async def main():
        accepted = Accepted(loop, Echo)
        server = await loop.create_server(accepted, HOST, 0, start_serving=False)
        address = server.sockets[0].getsockname()
        assert not server.is_serving()
        assert await refused(loop, address)
        await server.start_serving()
        assert server.is_serving()
        ct, cp = await loop.create_connection(lambda: Recorder(loop), *address)
        ct.write(b"ping")
        assert await cp.wait_for_data(4) == b"ping"
        ct.close()
        await cp.lost
        await close_server(server)
        assert not server.is_serving()

    run(loop, main())


@pytest.mark.uvloop_differs("a closed server's sockets is [], not ()")
def test_server_serve_forever_cancelled_closes_the_server(loop):
    async def main():
        accepted = Accepted(loop, Echo)
        server = await loop.create_server(accepted, HOST, 0, start_serving=False)
        address = server.sockets[0].getsockname()
        serving = asyncio.ensure_future(server.serve_forever())
        while not server.is_serving():  # serve_forever starts serving when it first runs
            await asyncio.sleep(0)
        ct, cp = await loop.create_connection(lambda: Recorder(loop), *address)
        assert server.is_serving()
        ct.write(b"ping")
        assert await cp.wait_for_data(4) == b"ping"
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
        assert not server.is_serving()
        assert server.sockets == ()
        # the connection it had stays open
        ct.write(b"pong")
        assert await cp.wait_for_data(8) == b"pingpong"
        ct.close()
        await cp.lost
        await (await accepted.first).lost
        await server.wait_closed()

    run(loop, main())


def test_closing_a_server_frees_its_port_at_once(loop):
    async def main():
        server = await loop.create_server(lambda: Recorder(loop), HOST, 0)
        address = server.sockets[0].getsockname()
        server.close()
        with socket.socket() as again:  # as create_server binds: SO_REUSEADDR, then listen
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(address)
            again.listen(1)
        await server.wait_closed()

    run(loop, main())


def test_server_close_leaves_existing_connections_open(loop):
    async def main():
        accepted = Accepted(loop, Echo)
        server = await loop.create_server(accepted, HOST, 0)
        address = server.sockets[0].getsockname()
        ct, cp = await loop.create_connection(lambda: Recorder(loop), *address)
        sp = await accepted.first
        await sp.made
        server.close()
        await server.wait_closed()  # 3.11: returns with the connection still open
        assert not server.is_serving()
        assert await refused(loop, address)
        ct.write(b"still here")
        assert await cp.wait_for_data(10) == b"still here"
        assert not sp.transport.is_closing()
        ct.close()
        assert await sp.lost is None
        assert await cp.lost is None
        assert sp.events == ["made", "data", "eof", "lost"]

    run(loop, main())


# ---- 12. Unix sockets ---------------------------------------------------------------------------

def test_unix_server_and_connection_round_trip(loop):
    tmp = tempfile.mkdtemp(prefix="aloop-test-")
    path = os.path.join(tmp, "sock")
    payload = pattern(MiB, seed=13)

    async def main():
        errors = catch_errors(loop)
        accepted = Accepted(loop, Echo)
        server = await loop.create_unix_server(accepted, path)
        assert server.sockets[0].family == socket.AF_UNIX
        assert server.sockets[0].getsockname() == path
        ct, cp = await loop.create_unix_connection(lambda: Recorder(loop), path)
        assert ct.get_extra_info("peername") == path
        assert ct.get_extra_info("socket").family == socket.AF_UNIX
        sp = await accepted.first
        st = await sp.made
        assert st.get_extra_info("sockname") == path
        ct.write(payload)
        ct.write_eof()
        assert await cp.lost is None
        assert await sp.lost is None
        assert bytes(cp.data) == payload
        assert cp.events == ["made", "data", "eof", "lost"]
        assert sp.events == ["made", "data", "eof", "lost"]
        await close_server(server)
        assert errors == []

    try:
        run(loop, main())
    finally:
        shutil.rmtree(tmp)


# ---- 13. connect_accepted_socket ----------------------------------------------------------------

def test_connect_accepted_socket_with_a_plainly_accepted_socket(loop):
    async def main():
        with socket.socket() as lsock:
            lsock.bind((HOST, 0))
            lsock.listen(1)
            raw = socket.socket()
            raw.connect(lsock.getsockname())  # loopback: the kernel completes it from the backlog
            raw.setblocking(False)
            with raw:
                conn, address = lsock.accept()
                assert address == raw.getsockname()
                st, sp = await loop.connect_accepted_socket(lambda: Echo(loop), conn)
                assert sp.transport is st
                assert st.get_extra_info("peername") == raw.getsockname()
                assert st.get_extra_info("sockname") == lsock.getsockname()
                await loop.sock_sendall(raw, b"accepted elsewhere")
                got = b""
                while len(got) < 18:
                    chunk = await loop.sock_recv(raw, 100)
                    assert chunk
                    got += chunk
                assert got == b"accepted elsewhere"
                raw.shutdown(socket.SHUT_WR)
                assert await sp.lost is None
                assert await loop.sock_recv(raw, 100) == b""
                assert sp.events == ["made", "data", "eof", "lost"]
        conn.close()  # the transport has closed its own (a no-op on a closed socket)

    run(loop, main())


# ---- 14. TLS ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_files():
    tmp = tempfile.mkdtemp(prefix="aloop-tls-")
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", os.path.join(tmp, "key.pem"), "-out", os.path.join(tmp, "cert.pem")],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    finally:
        shutil.rmtree(tmp)


def contexts(tls_files):
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=cert)
    return server_ctx, client_ctx


def test_tls_round_trip_of_1_mib(loop, tls_files):
    server_ctx, client_ctx = contexts(tls_files)
    payload = pattern(MiB, seed=17)

    async def main():
        errors = catch_errors(loop)
        accepted = Accepted(loop, Echo)
        server = await loop.create_server(accepted, HOST, 0, ssl=server_ctx)
        ct, cp = await connect(loop, server, ssl=client_ctx, server_hostname="localhost")
        ssl_object = ct.get_extra_info("ssl_object")
        assert ssl_object is not None
        assert ssl_object.server_hostname == "localhost"
        assert ct.get_extra_info("peercert")["subject"] == ((("commonName", "localhost"),),)
        assert ct.get_extra_info("sslcontext") is client_ctx
        assert ct.get_extra_info("cipher") is not None
        assert ct.get_extra_info("peername") == server.sockets[0].getsockname()
        ct.write(payload)
        assert await cp.wait_for_data(len(payload)) == payload
        sp = await accepted.first
        assert bytes(sp.data) == payload
        assert sp.transport.get_extra_info("ssl_object") is not None
        ct.close()
        assert await cp.lost is None
        assert await sp.lost is None
        assert cp.events == ["made", "data", "eof", "lost"]  # the server's close_notify
        assert sp.events == ["made", "data", "eof", "lost"]
        await close_server(server)
        assert errors == []

    run(loop, main())


class StartTLS(Recorder):
    """Replies b"OK\\n" to b"STARTTLS\\n" and stops reading (so the TLS handshake waits for
    start_tls): `asked` is then done."""

    def __init__(self, loop):
        super().__init__(loop)
        self.asked = loop.create_future()

    def data_received(self, data):
        super().data_received(data)
        if bytes(self.data) == b"STARTTLS\n":
            self.transport.pause_reading()
            self.transport.write(b"OK\n")
            self.asked.set_result(None)


def test_start_tls_upgrades_a_plain_connection_on_both_sides(loop, tls_files):
    server_ctx, client_ctx = contexts(tls_files)

    async def main():
        errors = catch_errors(loop)
        accepted = Accepted(loop, StartTLS)
        server = await loop.create_server(accepted, HOST, 0)
        ct, cp = await connect(loop, server)
        ct.write(b"STARTTLS\n")
        sp = await accepted.first
        await sp.asked
        assert await cp.wait_for_data(3) == b"OK\n"
        server_upgrade = asyncio.ensure_future(
            loop.start_tls(sp.transport, sp, server_ctx, server_side=True))
        tls_ct = await loop.start_tls(ct, cp, client_ctx, server_hostname="localhost")
        tls_st = await server_upgrade
        assert tls_ct.get_extra_info("ssl_object") is not None
        assert tls_st.get_extra_info("ssl_object") is not None
        assert ct.get_extra_info("ssl_object") is None
        assert tls_ct.get_protocol() is cp
        tls_ct.write(b"secret")
        assert await sp.wait_for_data(9 + 6) == b"STARTTLS\nsecret"
        tls_st.write(b"reply")
        assert await cp.wait_for_data(3 + 5) == b"OK\nreply"
        tls_ct.close()
        assert await cp.lost is None
        assert await sp.lost is None
        assert cp.events == ["made", "data", "eof", "lost"]  # the server's close_notify
        assert sp.events == ["made", "data", "eof", "lost"]
        await close_server(server)
        assert errors == []

    run(loop, main())


def test_tls_client_that_does_not_trust_the_certificate_gets_a_verification_error(loop, tls_files):
    server_ctx, _ = contexts(tls_files)
    untrusting = ssl.create_default_context()

    async def main():
        accepted = Accepted(loop)
        server = await loop.create_server(accepted, HOST, 0, ssl=server_ctx)
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await loop.create_connection(lambda: Recorder(loop),
                                         *server.sockets[0].getsockname(), ssl=untrusting,
                                         server_hostname="localhost")
        assert info.value.verify_message == "self-signed certificate"
        await close_server(server)
        assert accepted.protocols == [] or not accepted.protocols[0].made.done()

    run(loop, main())


# ---- 15. sendfile -------------------------------------------------------------------------------

@pytest.mark.uvloop_differs("no loop.sendfile: NotImplementedError")
@pytest.mark.parametrize("kind", ["regular file", "BytesIO"])
def test_loop_sendfile_on_a_transport(loop, kind, tmp_path):
    content = pattern(MiB, seed=19)
    if kind == "BytesIO":
        file = io.BytesIO(content)
    else:
        (tmp_path / "data").write_bytes(content)
        file = open(tmp_path / "data", "rb")

    async def main():
        errors = catch_errors(loop)
        accepted = Accepted(loop)
        server = await loop.create_server(accepted, HOST, 0)
        ct, cp = await connect(loop, server)
        sent = await loop.sendfile(ct, file)
        assert sent == len(content)
        assert file.tell() == len(content)
        assert ct.get_protocol() is cp
        assert ct.is_reading()
        ct.write(b"tail")
        ct.write_eof()
        sp = await accepted.first
        assert await sp.lost is None
        assert bytes(sp.data) == content + b"tail"
        assert await cp.lost is None
        assert cp.events == ["made", "eof", "lost"]
        await close_server(server)
        assert errors == []

    with file:
        run(loop, main())


# ---- 16. after connection_lost ------------------------------------------------------------------

@pytest.mark.uvloop_differs("write() on a lost connection raises RuntimeError")
def test_write_after_connection_lost_does_not_raise(loop):
    async def main():
        accepted = Accepted(loop)
        server = await loop.create_server(accepted, HOST, 0)
        ct, cp = await connect(loop, server)
        ct.close()
        assert ct.is_closing()
        ct.write(b"after close")  # dropped
        assert await cp.lost is None
        assert ct.is_closing()
        assert not ct.is_reading()
        ct.write(b"after connection_lost")
        ct.writelines([b"a", b"b"])
        ct.close()
        ct.abort()
        assert cp.events == ["made", "lost"]
        sp = await accepted.first
        assert await sp.lost is None
        assert bytes(sp.data) == b""
        await close_server(server)

    run(loop, main())


@pytest.mark.uvloop_differs("write() on a lost connection raises RuntimeError")
def test_writes_after_connection_lost_are_logged_from_the_fifth_on(loop, caplog):
    async def main():
        accepted = Accepted(loop)
        server = await loop.create_server(accepted, HOST, 0)
        ct, cp = await connect(loop, server)
        ct.close()
        await cp.lost
        await (await accepted.first).lost
        await close_server(server)
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(10):
                ct.write(b"x")
        return [r.getMessage() for r in caplog.records if r.name == "asyncio"]

    assert run(loop, main()) == ["socket.send() raised exception."] * 6


@pytest.mark.uvloop_differs("TypeError's message is memoryview's")
def test_write_argument_and_write_eof_checks(loop):
    async def main():
        accepted = Accepted(loop)
        server = await loop.create_server(accepted, HOST, 0)
        ct, cp = await connect(loop, server)
        with pytest.raises(TypeError, match=re.escape(
                "data argument must be a bytes-like object, not 'str'")):
            ct.write("text")
        ct.write(b"")
        ct.write(bytearray(b"ab"))
        ct.write(memoryview(b"cd"))
        ct.write_eof()
        ct.write_eof()  # a second one is nothing
        with pytest.raises(RuntimeError, match=re.escape("Cannot call write() after write_eof()")):
            ct.write(b"more")
        sp = await accepted.first
        await sp.eof
        assert bytes(sp.data) == b"abcd"
        ct.close()
        await cp.lost
        await sp.lost
        await close_server(server)

    run(loop, main())
