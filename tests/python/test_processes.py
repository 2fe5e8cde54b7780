"""Datagram endpoints, pipes and child processes, on every loop (see conftest.py): on aloop these
are asyncio's own code bound onto the loop (datagram and pipe transports on add_reader and
add_writer), and a child's exit is seen through a pidfd, or with ALOOP_PIDFD=0 through asyncio's
child watcher: the tests that start children run with both (the `pidfd` fixture).

Loopback and local pipes only; every wait is bounded by conftest's TIMEOUT, none on speed."""

import asyncio
import inspect
import os
import random
import shutil
import signal
import socket
import tempfile
import threading
from asyncio import selector_events

import pytest

from conftest import TIMEOUT, run

# Python 3.11's selector datagram transport drops an empty datagram in sendto (no datagram is
# sent): the test of empty datagrams expects whatever this Python's asyncio code does.
ASYNCIO_DROPS_EMPTY_SENDTO = "if not data:\n            return" in inspect.getsource(
    selector_events._SelectorDatagramTransport.sendto)


def our_children():
    """The pids of this process's children, running or zombies."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                pids.append(int(entry))
    return pids


@pytest.fixture(params=["1", "0"], ids=["pidfd", "watcher"])
def pidfd(request, monkeypatch):
    """ALOOP_PIDFD for a test that starts children: 1 watches them through pidfds, 0 through
    asyncio's child watcher (aloop's fallback). Other loops do not look at it.

    (Such a test asks for loop_kind before loop and pidfd: its id starts with the loop's, which
    conftest's uvloop_differs looks for.) A child a failed test left is ended and reaped after it,
    so that the next test's check that no child is left is about that test only."""
    monkeypatch.setenv("ALOOP_PIDFD", request.param)
    yield request.param
    for pid in our_children():
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def assert_no_child_left():
    """Every child of this process has been reaped (no zombie, nothing still running)."""
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def payload(size, seed=0):
    return random.Random(seed).randbytes(size)


# ---------------------------------------------------------------------------------------------
# Datagram endpoints


class Datagrams(asyncio.DatagramProtocol):
    """Records what an endpoint hears; `echo` sends every datagram back to its sender."""

    def __init__(self, loop, echo=False):
        self.echo = echo
        self.transport = None
        self.received = []  # (data, addr)
        self.events = []
        self.arrived = asyncio.Event()
        self.error = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport

    def datagram_received(self, data, addr):
        self.received.append((data, addr))
        self.arrived.set()
        if self.echo:
            self.transport.sendto(data, addr)

    def error_received(self, exc):
        self.events.append("error")
        if not self.error.done():
            self.error.set_result(exc)

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)

    async def next(self):
        """The next datagram not yet taken."""
        while not self.received:
            self.arrived.clear()
            await self.arrived.wait()
        return self.received.pop(0)


async def echo_pair(loop):
    """A UDP echo server on 127.0.0.1 and a client connected to it."""
    server, sproto = await loop.create_datagram_endpoint(
        lambda: Datagrams(loop, echo=True), local_addr=("127.0.0.1", 0))
    client, cproto = await loop.create_datagram_endpoint(
        lambda: Datagrams(loop), remote_addr=server.get_extra_info("sockname"))
    return server, sproto, client, cproto


async def close_all(*transports_and_protocols):
    for transport, protocol in transports_and_protocols:
        transport.close()
        assert await protocol.lost is None


@pytest.mark.parametrize("size", [1, 1000, 65507])
def test_datagram_endpoint_echo_over_loopback(loop, size):
    data = payload(size)

    async def main():
        server, sproto, client, cproto = await echo_pair(loop)
        client.sendto(data)
        back, sender = await cproto.next()
        heard, client_addr = sproto.received[0]
        result = (back == data, heard == data, sender == server.get_extra_info("sockname"),
                  client_addr == client.get_extra_info("sockname"))
        await close_all((client, cproto), (server, sproto))
        return result

    assert run(loop, main()) == (True, True, True, True)


def test_an_empty_datagram_is_received_and_an_empty_sendto_is_asyncios(loop):
    async def main():
        server, sproto, client, cproto = await echo_pair(loop)
        # From a plain socket, a 0-byte datagram reaches the endpoint as b"" (and is echoed).
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
            plain.bind(("127.0.0.1", 0))
            plain.sendto(b"", server.get_extra_info("sockname"))
            heard = await sproto.next()
            assert heard == (b"", plain.getsockname())
        # The endpoint's own sendto(b""): as asyncio's code does, then one byte after it.
        client.sendto(b"")
        client.sendto(b"1")
        got = [(await cproto.next())[0]]
        if not ASYNCIO_DROPS_EMPTY_SENDTO:
            got.append((await cproto.next())[0])
        await close_all((client, cproto), (server, sproto))
        return got

    assert run(loop, main()) == ([b"1"] if ASYNCIO_DROPS_EMPTY_SENDTO else [b"", b"1"])


def test_a_thousand_datagrams_all_arrive(loop):
    sent = {b"datagram %d" % i for i in range(1000)}

    async def main():
        server, sproto = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), local_addr=("127.0.0.1", 0))
        client, cproto = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), remote_addr=server.get_extra_info("sockname"))
        # In windows of 100, each waited for: the receive buffer never overflows (no loss that
        # loopback itself would cause), however slowly the server reads.
        ordered = sorted(sent)
        for start in range(0, len(ordered), 100):
            for data in ordered[start:start + 100]:
                client.sendto(data)
            while len(sproto.received) < min(start + 100, len(ordered)):
                sproto.arrived.clear()
                await sproto.arrived.wait()
        got = [data for data, _ in sproto.received]
        await close_all((client, cproto), (server, sproto))
        return got

    got = run(loop, main())
    assert len(got) == len(sent)
    assert set(got) == sent


def test_a_connected_endpoint_to_a_port_without_listener_gets_connection_refused(loop):
    gone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gone.bind(("127.0.0.1", 0))
    address = gone.getsockname()
    gone.close()

    async def main():
        client, cproto = await loop.create_datagram_endpoint(lambda: Datagrams(loop),
                                                             remote_addr=address)
        client.sendto(b"anyone?")
        exc = await cproto.error
        closing = client.is_closing()
        await close_all((client, cproto))
        return exc, closing

    exc, closing = run(loop, main())
    assert isinstance(exc, ConnectionRefusedError)
    assert closing is False  # error_received does not close the endpoint


def test_sendto_another_address_on_a_connected_endpoint_raises_value_error(loop):
    async def main():
        server, sproto, client, cproto = await echo_pair(loop)
        peer = server.get_extra_info("sockname")
        with pytest.raises(ValueError, match="Invalid address: must be None or"):
            client.sendto(b"x", ("127.0.0.1", peer[1] + 1 if peer[1] < 65535 else 1))
        client.sendto(b"same", peer)  # its own peer's address is accepted
        back = await cproto.next()
        await close_all((client, cproto), (server, sproto))
        return back

    assert run(loop, main())[0] == b"same"


def test_datagram_endpoint_extra_info(loop):
    async def main():
        server, sproto, client, cproto = await echo_pair(loop)
        ssock, csock = server.get_extra_info("socket"), client.get_extra_info("socket")
        info = {
            "server sockname": server.get_extra_info("sockname"),
            "server peername": server.get_extra_info("peername"),
            "server socket": (ssock.family, ssock.type, ssock.getsockname()),
            "client sockname": client.get_extra_info("sockname"),
            "client peername": client.get_extra_info("peername"),
            "client socket": (csock.family, csock.type, csock.getpeername()),
            "default": client.get_extra_info("no such thing", "default"),
        }
        await close_all((client, cproto), (server, sproto))
        return info

    info = run(loop, main())
    host, port = info["server sockname"]
    assert host == "127.0.0.1" and port > 0
    assert info["server peername"] is None
    assert info["server socket"] == (socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", port))
    assert info["client sockname"][0] == "127.0.0.1"
    assert info["client peername"] == ("127.0.0.1", port)
    assert info["client socket"] == (socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", port))
    assert info["default"] == "default"


@pytest.mark.uvloop_differs("create_datagram_endpoint refuses a path as local_addr: TypeError "
                            "local_addr must be a tuple of (host, port)")
def test_a_unix_datagram_endpoint_pair(loop):
    directory = tempfile.mkdtemp(prefix="aloop-")  # short: a socket path has ~108 bytes
    a, b = os.path.join(directory, "a"), os.path.join(directory, "b")

    async def main():
        server, sproto = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop, echo=True), local_addr=a, family=socket.AF_UNIX)
        client, cproto = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), local_addr=b, remote_addr=a, family=socket.AF_UNIX)
        client.sendto(b"ping over unix")
        back = await cproto.next()
        heard = sproto.received[0]
        names = (server.get_extra_info("sockname"), client.get_extra_info("sockname"),
                 client.get_extra_info("peername"))
        await close_all((client, cproto), (server, sproto))
        return back, heard, names

    try:
        back, heard, names = run(loop, main())
    finally:
        shutil.rmtree(directory)
    assert back == (b"ping over unix", a)
    assert heard == (b"ping over unix", b)
    assert names == (a, b, a)


@pytest.mark.parametrize("how", ["close", "abort"])
def test_closing_a_datagram_endpoint_calls_connection_lost_none(loop, how):
    async def main():
        transport, proto = await loop.create_datagram_endpoint(
            lambda: Datagrams(loop), local_addr=("127.0.0.1", 0))
        assert not transport.is_closing()
        getattr(transport, how)()
        assert transport.is_closing()
        assert proto.events == ["made"]  # connection_lost comes later, from the loop
        exc = await proto.lost
        await asyncio.sleep(0)
        return exc, proto.events

    assert run(loop, main()) == (None, ["made", "lost"])


# ---------------------------------------------------------------------------------------------
# Pipes


class PipeProtocol(asyncio.Protocol):
    """Records a pipe transport's calls: data is gathered, the rest in order."""

    def __init__(self, loop):
        self.transport = None
        self.data = bytearray()
        self.events = []
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data

    def eof_received(self):
        self.events.append("eof")

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


def write_all_and_close(fd, data):
    with open(fd, "wb", buffering=0, closefd=True) as f:
        view = memoryview(data)
        while view:
            view = view[f.write(view[:65536]):]


def test_read_pipe_gets_everything_a_thread_writes_then_eof_and_connection_lost(loop):
    data = payload(1 << 20, seed=1)
    r, w = os.pipe()
    rfile = open(r, "rb", buffering=0)

    async def main():
        transport, proto = await loop.connect_read_pipe(lambda: PipeProtocol(loop), rfile)
        assert transport.get_extra_info("pipe") is rfile
        writer = threading.Thread(target=write_all_and_close, args=(w, data))
        writer.start()
        exc = await proto.lost
        await loop.run_in_executor(None, writer.join)
        return exc, proto.events, bytes(proto.data), rfile.closed

    exc, events, got, closed = run(loop, main())
    assert exc is None
    assert events == ["made", "data", "eof", "lost"]
    assert len(got) == len(data) and got == data
    assert closed  # the transport closed the pipe it was given


def test_write_pipe_pauses_the_writer_and_delivers_4_mib_in_order_to_a_slow_reader(loop):
    data = payload(4 << 20, seed=2)
    r, w = os.pipe()
    wfile = open(w, "wb", buffering=0)
    received = bytearray()

    def slow_reader():
        with open(r, "rb", buffering=0) as f:
            while chunk := f.read(4096):
                received.extend(chunk)

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: PipeProtocol(loop), wfile)
        assert transport.get_extra_info("pipe") is wfile
        # The pipe holds at most what the kernel lets it; the rest waits in the transport, far
        # above the high-water mark, before the reader even starts.
        transport.write(data)
        assert proto.events == ["made", "pause"]
        assert transport.get_write_buffer_size() > 0
        reader = threading.Thread(target=slow_reader)
        reader.start()
        transport.close()  # after the buffer is written
        exc = await proto.lost
        await loop.run_in_executor(None, reader.join)
        return exc, proto.events, wfile.closed

    exc, events, closed = run(loop, main())
    assert exc is None
    assert events == ["made", "pause", "resume", "lost"]
    assert len(received) == len(data) and received == data
    assert closed


def test_write_pipe_with_data_pending_when_the_reader_closes_gets_broken_pipe(loop):
    r, w = os.pipe()
    wfile = open(w, "wb", buffering=0)

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: PipeProtocol(loop), wfile)
        transport.write(payload(1 << 20, seed=3))  # more than the pipe holds
        assert transport.get_write_buffer_size() > 0
        os.close(r)
        exc = await proto.lost
        return exc, transport.is_closing(), wfile.closed

    exc, closing, closed = run(loop, main())
    assert isinstance(exc, BrokenPipeError)
    assert closing and closed


@pytest.mark.uvloop_differs("a write pipe whose reader closes calls eof_received first")
def test_write_pipe_with_nothing_pending_when_the_reader_closes_gets_connection_lost_none(loop):
    r, w = os.pipe()
    wfile = open(w, "wb", buffering=0)

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: PipeProtocol(loop), wfile)
        transport.write(b"fits in the pipe")
        while transport.get_write_buffer_size():  # asyncio writes at once, uvloop in a while
            await asyncio.sleep(0.001)
        os.close(r)
        exc = await proto.lost
        return exc, proto.events, wfile.closed

    assert run(loop, main()) == (None, ["made", "lost"], True)


@pytest.mark.uvloop_differs("a write after write_eof on a pipe raises RuntimeError")
def test_a_write_pipe_after_write_eof_is_closing_and_drops_further_writes(loop):
    r, w = os.pipe()
    wfile = open(w, "wb", buffering=0)
    rfile = open(r, "rb", buffering=0)

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: PipeProtocol(loop), wfile)
        assert transport.can_write_eof()
        transport.write(b"before")
        transport.write_eof()
        closing = transport.is_closing()
        transport.write(b"after")  # dropped, as on asyncio's pipe: no error
        exc = await proto.lost
        return closing, exc, proto.events, os.read(rfile.fileno(), 100)  # all there is by now

    try:
        assert run(loop, main()) == (True, None, ["made", "lost"], b"before")
    finally:
        rfile.close()


@pytest.mark.uvloop_crashes("connect_read_pipe/connect_write_pipe on a regular file")
@pytest.mark.parametrize("writes", [False, True], ids=["read", "write"])
def test_a_pipe_transport_over_a_regular_file_is_refused(loop, tmp_path, writes):
    path = tmp_path / "regular"
    path.write_bytes(b"not a pipe")

    async def main():
        with open(path, "r+b", buffering=0) as f:
            connect = loop.connect_write_pipe if writes else loop.connect_read_pipe
            with pytest.raises(ValueError, match="Pipe transport is (for|only for) pipes"):
                await connect(asyncio.Protocol, f)

    run(loop, main())


def test_stream_reader_readline_over_a_read_pipe(loop):
    r, w = os.pipe()
    rfile = open(r, "rb", buffering=0)
    lines = [b"first line\n", b"\n", b"x" * 100000 + b"\n", b"no newline at the end"]

    async def main():
        reader = asyncio.StreamReader(limit=1 << 20)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), rfile)
        writer = threading.Thread(target=write_all_and_close, args=(w, b"".join(lines)))
        writer.start()
        got = []
        while line := await reader.readline():
            got.append(line)
        at_eof = reader.at_eof()
        await loop.run_in_executor(None, writer.join)
        transport.close()
        await asyncio.sleep(0)
        return got, at_eof

    assert run(loop, main()) == (lines, True)
    assert rfile.closed


# ---------------------------------------------------------------------------------------------
# Child processes


@pytest.mark.parametrize("argv, code", [(["true"], 0), (["false"], 1),
                                        (["sh", "-c", "exit 7"], 7)])
def test_exit_codes(loop_kind, loop, pidfd, argv, code):
    async def main():
        proc = await asyncio.create_subprocess_exec(*argv)
        return await proc.wait(), proc.returncode

    assert run(loop, main()) == (code, code)
    assert_no_child_left()


def test_shell_exit_code(loop_kind, loop, pidfd):
    async def main():
        proc = await asyncio.create_subprocess_shell("exit 7")
        return await proc.wait()

    assert run(loop, main()) == 7
    assert_no_child_left()


def test_a_child_killed_by_sigkill_returns_minus_9(loop_kind, loop, pidfd):
    async def main():
        proc = await asyncio.create_subprocess_exec("sleep", "60")
        assert proc.returncode is None
        proc.kill()
        return await proc.wait()

    assert run(loop, main()) == -signal.SIGKILL
    assert_no_child_left()


def test_cat_round_trips_16_mib_through_communicate(loop_kind, loop, pidfd):
    data = payload(16 << 20, seed=4)

    async def main():
        proc = await asyncio.create_subprocess_exec(
            "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        out, err = await proc.communicate(data)
        return out, err, proc.returncode

    out, err, code = run(loop, main(), timeout=60)
    assert (len(out), err, code) == (len(data), None, 0)
    assert out == data
    assert_no_child_left()


def test_stderr_to_stdout_merges_them(loop_kind, loop, pidfd):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", "echo out; echo err >&2; echo out again",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert proc.stderr is None
        out, err = await proc.communicate()
        return out, err, proc.returncode

    assert run(loop, main()) == (b"out\nerr\nout again\n", None, 0)
    assert_no_child_left()


def test_stdout_to_devnull(loop_kind, loop, pidfd):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", "echo hidden; echo shown >&2",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        assert proc.stdout is None
        out, err = await proc.communicate()
        return out, err, proc.returncode

    assert run(loop, main()) == (None, b"shown\n", 0)
    assert_no_child_left()


def test_fifty_concurrent_children_each_with_its_own_output(loop_kind, loop, pidfd):
    async def one(n):
        proc = await asyncio.create_subprocess_exec("sh", "-c", "echo $0", str(n),
                                                    stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        return out, proc.returncode

    async def main():
        return await asyncio.gather(*(one(n) for n in range(50)))

    assert run(loop, main(), timeout=60) == [(b"%d\n" % n, 0) for n in range(50)]
    assert_no_child_left()


def test_a_missing_program_raises_file_not_found_at_create_time(loop_kind, loop, pidfd,
                                                                tmp_path):
    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec(str(tmp_path / "no-such-program"))
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("aloop-no-such-program-anywhere",
                                                 stdout=asyncio.subprocess.PIPE)

    run(loop, main())
    assert_no_child_left()


def test_a_file_that_is_not_executable_raises_permission_error(loop_kind, loop, pidfd,
                                                               tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)

    async def main():
        with pytest.raises(PermissionError):
            await asyncio.create_subprocess_exec(str(script), stdout=asyncio.subprocess.PIPE)

    run(loop, main())
    assert_no_child_left()


def test_wait_after_exit_twice_gives_the_same_code(loop_kind, loop, pidfd):
    async def main():
        proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 3")
        first = await proc.wait()
        second = await proc.wait()
        await asyncio.sleep(0.01)
        third = await proc.wait()
        return first, second, third, proc.returncode

    assert run(loop, main()) == (3, 3, 3, 3)
    assert_no_child_left()


class Child(asyncio.SubprocessProtocol):
    """Records a subprocess transport's calls to its protocol."""

    def __init__(self, loop):
        self.transport = None
        self.events = []
        self.data = {}
        self.exited = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append(("made",))

    def pipe_data_received(self, fd, data):
        if self.events[-1] != ("data", fd):
            self.events.append(("data", fd))
        self.data[fd] = self.data.get(fd, b"") + data

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe lost", fd, exc))

    def process_exited(self):
        self.events.append(("exited", self.transport.get_returncode()))
        self.exited.set_result(None)

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        self.lost.set_result(exc)


def is_read_transport(transport):
    # uvloop's pipe transports have asyncio's methods without deriving from its classes.
    return all(callable(getattr(transport, name, None))
               for name in ("pause_reading", "resume_reading", "is_reading", "close"))


def is_write_transport(transport):
    return all(callable(getattr(transport, name, None))
               for name in ("write", "write_eof", "can_write_eof", "get_write_buffer_size",
                            "close"))


def check_child_events(events, fds, code):
    """What asyncio guarantees a SubprocessProtocol: connection_made first; each pipe's data
    before that pipe's pipe_connection_lost(fd, None), which comes once; process_exited once, with
    the return code known (before or after the pipes' ends); connection_lost(None) last."""
    assert events[0] == ("made",)
    assert events[-1] == ("lost", None)
    assert events.count(("exited", code)) == 1
    assert len([e for e in events if e[0] == "exited"]) == 1
    for fd in fds:
        assert events.count(("pipe lost", fd, None)) == 1
        lost_at = events.index(("pipe lost", fd, None))
        assert ("data", fd) not in events[lost_at:]
    assert {e[1] for e in events if e[0] == "pipe lost"} == set(fds)


@pytest.mark.uvloop_differs("now and then a pipe_connection_lost comes after connection_lost")
def test_subprocess_exec_with_a_custom_protocol(loop_kind, loop, pidfd):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Child(loop), "sh", "-c", "echo $$; printf err >&2; exit 5",
            stdin=None, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        pid = transport.get_pid()
        stdout_transport = transport.get_pipe_transport(1)
        facts = {
            "pid is int": isinstance(pid, int) and pid > 0,
            "stdin transport": transport.get_pipe_transport(0),
            "stdout transport": is_read_transport(stdout_transport),
            "stderr transport": is_read_transport(transport.get_pipe_transport(2)),
            "protocol": transport.get_protocol() is proto,
        }
        assert await proto.lost is None
        facts["returncode"] = transport.get_returncode()
        facts["pid printed"] = proto.data.get(1) == b"%d\n" % pid
        facts["stderr"] = proto.data.get(2)
        facts["stdout transport closing"] = stdout_transport.is_closing()
        transport.close()
        return facts, proto.events

    facts, events = run(loop, main())
    assert facts == {"pid is int": True, "stdin transport": None, "stdout transport": True,
                     "stderr transport": True, "protocol": True, "returncode": 5,
                     "pid printed": True, "stderr": b"err", "stdout transport closing": True}
    check_child_events(events, fds=(1, 2), code=5)
    assert_no_child_left()


@pytest.mark.uvloop_differs("now and then a pipe_connection_lost comes after connection_lost")
def test_subprocess_shell_with_a_custom_protocol_and_stdin(loop_kind, loop, pidfd):
    async def main():
        transport, proto = await loop.subprocess_shell(
            lambda: Child(loop), "tr a-z A-Z", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=None)
        stdin = transport.get_pipe_transport(0)
        assert is_write_transport(stdin)
        assert transport.get_pipe_transport(2) is None
        stdin.write(b"shout this\n")
        stdin.close()
        assert await proto.lost is None
        code = transport.get_returncode()
        transport.close()
        return proto.data, code, proto.events

    data, code, events = run(loop, main())
    assert (data, code) == ({1: b"SHOUT THIS\n"}, 0)
    check_child_events(events, fds=(0, 1), code=0)
    assert_no_child_left()


@pytest.mark.uvloop_differs("now and then a pipe_connection_lost comes after connection_lost")
@pytest.mark.parametrize("how, code", [("terminate", -signal.SIGTERM),
                                       ("send_signal", -signal.SIGUSR1),
                                       ("kill", -signal.SIGKILL)])
def test_signalling_a_child_through_its_transport(loop_kind, loop, pidfd, how, code):
    async def main():
        # cat waits on its stdin, which stays open: only the signal ends it.
        transport, proto = await loop.subprocess_exec(
            lambda: Child(loop), "cat", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=None)
        transport.get_pipe_transport(0).write(b"still there?\n")
        while proto.data.get(1) != b"still there?\n":  # it is running, and echoed that
            await asyncio.sleep(0.001)
        assert transport.get_returncode() is None
        if how == "send_signal":
            transport.send_signal(signal.SIGUSR1)
        else:
            getattr(transport, how)()
        await proto.exited
        returncode = transport.get_returncode()
        # The stdin pipe sees its reader gone (the child), stdout its writer: all ends.
        assert await proto.lost is None
        transport.close()
        return returncode, proto.events

    returncode, events = run(loop, main())
    assert returncode == code
    check_child_events(events, fds=(0, 1), code=code)
    assert_no_child_left()


@pytest.mark.uvloop_differs("libuv's own SIGCHLD handler replaces Python's")
def test_a_python_sigchld_handler_is_still_called(loop_kind, loop, pidfd):
    heard = []
    old = signal.signal(signal.SIGCHLD, lambda signum, frame: heard.append(signum))

    async def main():
        proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 4")
        code = await proc.wait()
        while not heard:  # Python runs the handler in the main thread, soon after
            await asyncio.sleep(0.001)
        return code

    try:
        assert run(loop, main()) == 4
    finally:
        signal.signal(signal.SIGCHLD, old)
    assert heard[0] == signal.SIGCHLD
    assert_no_child_left()


def test_a_child_that_exits_while_the_loop_is_not_running_is_seen_in_the_next_run(loop_kind, loop,
                                                                                  pidfd):
    proc = run(loop, asyncio.create_subprocess_exec("sh", "-c", "exit 6"))
    # Whenever it exits (before the next run or during it), wait() sees it.
    assert run(loop, proc.wait()) == 6
    assert_no_child_left()


@pytest.mark.uvloop_differs("a child that outlives the loop is never reaped, and its transport's "
                            "close() raises RuntimeError once the loop is closed")
def test_a_child_that_outlives_its_loop_is_still_reaped_when_it_exits(loop_kind, loop, pidfd):
    # The child reads its stdin, a pipe of the test's: it exits when the test closes the other
    # end, after the loop that started it is closed (as after asyncio.run(main()) of a program
    # whose main() leaves a child running).
    r, w = os.pipe()

    async def main():
        transport, _ = await loop.subprocess_exec(lambda: Child(loop), "sh", "-c", "read line",
                                                  stdin=r, stdout=None, stderr=None)
        return transport

    try:
        transport = run(loop, main())
    finally:
        os.close(r)
    pid = transport.get_pid()
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    assert pid in our_children()
    os.close(w)

    # Not reaped here (that would hide a zombie): wait, bounded, until it is gone.
    async def gone():
        while pid in our_children():
            await asyncio.sleep(0.01)

    try:
        asyncio.run(asyncio.wait_for(gone(), TIMEOUT))
        assert_no_child_left()
    finally:
        transport.close()
