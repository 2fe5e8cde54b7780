"""aloop's asyncio event loop: asyncio on aloop's drivers (io_uring, libev, select).

    import aloop
    aloop.run(main())                 # as asyncio.run(main()), on an aloop loop
    aloop.install()                   # every new event loop is an aloop loop
    python3 -m aloop script.py        # an unchanged asyncio program on aloop

backend=None means the C library's default: $ALOOP_BACKEND, else the first driver that works
(io_uring, libev, select).

Every method of asyncio.AbstractEventLoop is there. The hot paths are aloop's, in C: the
iteration, handles and timers, readers and writers, the sock_* methods (aloop operations: requests
io_uring completes in the kernel) and stream transports (aloop transports calling the protocol's
methods, BufferedProtocol straight into get_buffer; TLS is asyncio's own SSL protocol over them).
The orchestration around them (create_connection's address resolution and happy eyeballs,
create_server's sockets, Server objects, start_tls, datagram endpoints, pipes and child processes)
is asyncio's own pure-Python code, bound onto Loop and running on these methods, so its semantics
and messages are asyncio's exactly. Child processes are watched through a pidfd (no SIGCHLD
handler, no thread) where the kernel has pidfds.
"""

import asyncio
import errno
import functools
import io
import os
import selectors
import signal
import socket
import stat
import ssl
import sys
import threading
import weakref
from asyncio import base_events, constants, selector_events, trsock, unix_events
from asyncio.log import logger

from . import _aloop

__all__ = ("Loop", "EventLoopPolicy", "new_event_loop", "install", "run", "backends")


def backends():
    """The compiled drivers in auto's order, as (name, available, reason) tuples."""
    return _aloop.backends()


# The rare paths are asyncio's own pure-Python code: they do no I/O themselves and run on the
# methods LoopCore implements on aloop (see the comment at the top of _aloop.c).
_BORROWED = (
    "default_exception_handler", "set_debug", "_set_coroutine_origin_tracking",
    "shutdown_asyncgens", "_asyncgen_firstiter_hook", "_asyncgen_finalizer_hook",
    "shutdown_default_executor",
    "_do_shutdown", "_check_default_executor", "_check_closed",
    "_check_running", "_check_callback", "_check_thread",
    "_check_sendfile_params", "_sock_sendfile_fallback",
    # connections, servers, datagrams, pipes, child processes, TLS and sendfile on transports
    "create_connection", "_connect_sock", "_ensure_resolved", "_getaddrinfo_debug",
    "_create_connection_transport", "create_server", "_create_server_getaddrinfo",
    "connect_accepted_socket", "create_datagram_endpoint", "connect_read_pipe",
    "connect_write_pipe", "subprocess_exec", "subprocess_shell", "_log_subprocess", "start_tls",
    "sendfile",
)
# ... and from the selector loop: the accept loop, and transports aloop has no C form of yet
# for Python (datagrams; TLS is asyncio's SSL protocol over aloop's own transport), which run on
# add_reader/add_writer.
_BORROWED_SELECTOR = (
    "_start_serving", "_accept_connection", "_accept_connection2",
    "_make_ssl_transport",
)
# ... and from the Unix loop: Unix sockets and pipes.
_BORROWED_UNIX = (
    "create_unix_connection", "create_unix_server", "_child_watcher_callback",
)


class Loop(_aloop.LoopCore, asyncio.AbstractEventLoop):
    """An asyncio event loop on aloop."""

    def __init__(self, backend=None):
        # LoopCore.__new__ created the aloop loop on `backend`.
        self._timer_cancelled_count = 0
        self._default_executor = None
        self._current_handle = None
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._executor_shutdown_called = False
        self.slow_callback_duration = 0.1
        self._debug = False
        self._signal_handlers = {}  # signal number -> Handle (see add_signal_handler)
        self._transports = weakref.WeakValueDictionary()  # asyncio's selector transports' table
        self._child_pidfds = {}  # pid -> pidfd, for the children being watched
        self.set_debug(asyncio.coroutines._is_debug_mode())

    def __repr__(self):
        return (f"<{self.__class__.__name__} backend={self.backend} running={self.is_running()} "
                f"closed={self.is_closed()} debug={self.get_debug()}>")

    def close(self):
        """Close the loop: pending callbacks are dropped, the default executor shut down."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        if sys.is_finalizing():
            self._signal_handlers.clear()  # the signal module may be gone already
        for sig in list(self._signal_handlers):
            self.remove_signal_handler(sig)
        children, self._child_pidfds = self._child_pidfds, {}
        self._close()  # cancels the waits of children still running
        for pid, pidfd in children.items():
            # A child that outlives its loop is still reaped when it exits, as asyncio's watcher
            # threads do: no zombie is left behind.
            os.close(pidfd)
            threading.Thread(target=_reap, args=(pid,), name=f"aloop-reap-{pid}",
                             daemon=True).start()
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)

    # Signal handlers: Python's own signal module catches the signal (a handler that does nothing)
    # and its C handler writes the number to the wake-up fd, which is this loop's wake-up socket
    # (the one that makes Ctrl-C wake a sleeping loop); the loop reads the number there and queues
    # the handler's Handle. So signal.getsignal() and Python's SIGINT handling stay right, as with
    # asyncio, which aloop's C signal handlers (installed behind Python's back) would not keep.

    def add_signal_handler(self, sig, callback, *args):
        """Run callback(*args) in the loop whenever signal sig arrives (main thread only)."""
        if asyncio.iscoroutine(callback) or asyncio.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        try:
            signal.set_wakeup_fd(self._wakeup_fd)  # only the main thread may: ValueError
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))
        self._signal_handlers[sig] = asyncio.Handle(callback, args, self, None)
        try:
            signal.signal(sig, _signal_caught)
            signal.siginterrupt(sig, False)  # system calls restart rather than fail with EINTR
        except OSError as exc:
            del self._signal_handlers[sig]
            self._release_wakeup_fd()
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught")
            raise

    def remove_signal_handler(self, sig):
        """Remove sig's handler (the signal's default comes back): True, or False if none."""
        self._check_signal(sig)
        if self._signal_handlers.pop(sig, None) is None:
            return False
        try:
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT
                          else signal.SIG_DFL)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught")
            raise
        self._release_wakeup_fd()
        return True

    def _check_signal(self, sig):
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        if sig not in signal.valid_signals():
            raise ValueError(f"invalid signal number {sig}")

    def _release_wakeup_fd(self):
        # While the loop runs, the wake-up socket stays for Ctrl-C; run_forever lets it go after.
        if self._signal_handlers or self.is_running():
            return
        try:
            signal.set_wakeup_fd(-1)
        except (ValueError, OSError) as exc:
            logger.info("set_wakeup_fd(-1) failed: %s", exc)

    def _handle_signal(self, sig):
        # Called by the loop for each signal number read from the wake-up socket.
        handle = self._signal_handlers.get(sig)
        if handle is None:
            return
        if handle.cancelled():
            self.remove_signal_handler(sig)
        else:
            self._call_handle_soon(handle)

    def _check_sock(self, sock):
        if isinstance(sock, ssl.SSLSocket):
            raise TypeError("Socket cannot be of type SSLSocket")
        if sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    async def sock_recv(self, sock, n):
        """Receive up to n bytes from sock (non-blocking)."""
        self._check_sock(sock)
        fut = self.create_future()
        self._sock_recv(sock.fileno(), n, fut)
        return await fut

    async def sock_recv_into(self, sock, buf):
        """Receive into buf; returns the number of bytes received."""
        self._check_sock(sock)
        fut = self.create_future()
        self._sock_recv_into(sock.fileno(), buf, fut)
        return await fut

    async def sock_sendall(self, sock, data):
        """Send every byte of data."""
        self._check_sock(sock)
        fut = self.create_future()
        self._sock_sendall(sock.fileno(), data, fut)
        return await fut

    async def sock_accept(self, sock):
        """Accept a connection: (socket, address), the socket non-blocking."""
        self._check_sock(sock)
        fut = self.create_future()
        self._sock_accept(sock.fileno(), fut)
        fd, address = await fut
        conn = socket.socket(sock.family, sock.type & ~socket.SOCK_NONBLOCK, sock.proto, fileno=fd)
        conn.setblocking(False)
        return conn, address

    async def sock_connect(self, sock, address):
        """Connect sock to address (resolved on the executor if it is not numeric)."""
        self._check_sock(sock)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            address = await self._resolve(sock, address)
        fut = self.create_future()
        self._sock_connect(sock.fileno(), sock.family, address, fut)
        try:
            return await fut
        except OSError as exc:
            if exc.errno is None:
                raise
            # asyncio's words for a connection that failed after it started
            raise OSError(exc.errno, f"Connect call failed {address}") from None

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        """socket.getaddrinfo on the default executor, as asyncio's."""
        return await self.run_in_executor(None, socket.getaddrinfo, host, port, family, type,
                                          proto, flags)

    async def getnameinfo(self, sockaddr, flags=0):
        """socket.getnameinfo on the default executor, as asyncio's."""
        return await self.run_in_executor(None, socket.getnameinfo, sockaddr, flags)

    async def sock_recvfrom(self, sock, bufsize):
        """Receive one datagram of up to bufsize bytes: (data, address)."""
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        buf = bytearray(bufsize)
        n, address = await self.sock_recvfrom_into(sock, buf)
        del buf[n:]
        return bytes(buf), address

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive one datagram into buf (its first nbytes; 0: all of it): (length, address)."""
        self._check_sock(sock)
        fut = self.create_future()
        self._sock_recvfrom_into(sock.fileno(), buf, nbytes, fut)
        return await fut

    async def sock_sendto(self, sock, data, address):
        """Send data as one datagram to address; returns the number of bytes sent."""
        self._check_sock(sock)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            address = await self._resolve(sock, address)
        fut = self.create_future()
        self._sock_sendto(sock.fileno(), sock.family, data, address, fut)
        return await fut

    async def sock_sendfile(self, sock, file, offset=0, count=None, *, fallback=True):
        """Send a binary file over a stream socket (aloop_sock_sendfile for a regular file, else
        asyncio's read-and-send when fallback is true); the file's position ends after the last
        byte sent. Returns the number of bytes sent."""
        self._check_sock(sock)
        self._check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except asyncio.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    async def _sock_sendfile_native(self, sock, file, offset, count):
        return await self._send_file(
            file, offset, lambda fd, fut: self._sock_sendfile(sock.fileno(), fd, offset,
                                                              count or 0, fut))

    async def _send_file(self, file, offset, start):
        """start(fd, fut) sends the regular file's bytes natively; fut gets the count sent.
        As asyncio, the file's position ends after the last byte sent."""
        try:
            fd = file.fileno()
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except (AttributeError, io.UnsupportedOperation, OSError):
            regular = False
        if not regular:
            raise asyncio.SendfileNotAvailableError("not a regular file")
        fut = self.create_future()
        start(fd, fut)
        sent = await fut
        if sent > 0:
            file.seek(offset + sent)
        return sent

    # Stream transports: aloop's, in C (_aloop.Transport).

    @staticmethod
    def _socket_extra(sock, extra):
        """What asyncio's socket transports put in get_extra_info."""
        extra = dict(extra) if extra else {}
        extra["socket"] = trsock.TransportSocket(sock)
        try:
            extra["sockname"] = sock.getsockname()
        except OSError:
            extra["sockname"] = None
        if "peername" not in extra:
            try:
                extra["peername"] = sock.getpeername()
            except OSError:
                extra["peername"] = None
        return extra

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        extra = self._socket_extra(sock, extra)
        base_events._set_nodelay(sock)
        return self._socket_transport(sock, protocol, extra, server, waiter)

    def _make_datagram_transport(self, sock, protocol, address=None, waiter=None, extra=None):
        """aloop's datagram transport (_aloop.DatagramTransport), for create_datagram_endpoint."""
        return self._datagram_transport(sock, protocol, address, self._socket_extra(sock, extra),
                                        waiter)

    # Pipe transports: aloop's pipe transports (read(2)/write(2), in the kernel on io_uring), the
    # same C type; asyncio's connect_read_pipe/connect_write_pipe and subprocesses call these.

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return self._pipe_transport(pipe, protocol, {**(extra or {}), "pipe": pipe}, waiter, False)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return self._pipe_transport(pipe, protocol, {**(extra or {}), "pipe": pipe}, waiter, True)

    async def _sendfile_native(self, transp, file, offset, count):
        """aloop_transport_sendfile for a regular file on one of aloop's transports."""
        if not isinstance(transp, _aloop.Transport):
            raise asyncio.SendfileNotAvailableError("not an aloop transport")
        return await self._send_file(
            file, offset, lambda fd, fut: transp._sendfile(fd, offset, count or 0, fut))

    async def _sendfile_fallback(self, transp, file, offset, count):
        """asyncio's read-and-write fallback; on aloop's transports with the same protocol swap
        asyncio uses (which insists on asyncio's own transport classes)."""
        if not isinstance(transp, _aloop.Transport):
            return await base_events.BaseEventLoop._sendfile_fallback(self, transp, file, offset,
                                                                      count)
        if offset:
            file.seek(offset)
        blocksize = min(count, 16384) if count else 16384
        buf = bytearray(blocksize)
        total_sent = 0
        proto = _SendfileFallbackProtocol(transp)
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        return total_sent
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    return total_sent
                await proto.drain()
                transp.write(view[:read])
                total_sent += read
        finally:
            if total_sent > 0 and hasattr(file, "seek"):
                file.seek(offset + total_sent)
            await proto.restore()

    # What asyncio's selector transports (datagrams, pipes) and accept loop call on their loop.

    def _add_reader(self, fd, callback, *args):
        self.add_reader(fd, callback, *args)

    def _remove_reader(self, fd):
        return self.remove_reader(fd)

    def _add_writer(self, fd, callback, *args):
        self.add_writer(fd, callback, *args)

    def _remove_writer(self, fd):
        return self.remove_writer(fd)

    @property
    def _selector(self):
        return _Watched(self)

    def _stop_serving(self, sock):
        self._remove_reader(sock.fileno())
        try:
            # Stop listening now: io_uring may hold the file until its cancelled poll completes,
            # and a connection or a new listener on the port must not find it meanwhile.
            sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        sock.close()

    # Child processes: asyncio's transport, its exit seen through a pidfd.

    async def _make_subprocess_transport(self, protocol, args, shell, stdin, stdout, stderr,
                                         bufsize, extra=None, **kwargs):
        if not _use_pidfd():
            return await unix_events._UnixSelectorEventLoop._make_subprocess_transport(
                self, protocol, args, shell, stdin, stdout, stderr, bufsize, extra=extra,
                **kwargs)
        waiter = self.create_future()
        transp = unix_events._UnixSubprocessTransport(self, protocol, args, shell, stdin, stdout,
                                                      stderr, bufsize, waiter=waiter, extra=extra,
                                                      **kwargs)
        self._watch_child(transp.get_pid(), transp)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transp.close()
            await transp._wait()
            raise
        return transp

    def _watch_child(self, pid, transp):
        pidfd = os.pidfd_open(pid)
        self._child_pidfds[pid] = pidfd
        waited = self.create_future()
        waited.add_done_callback(functools.partial(self._child_exited, pid, transp))
        self._pidfd_wait(pidfd, waited)  # aloop_pidfd_wait: reaps it (io_uring: in the kernel)

    def _child_exited(self, pid, transp, waited):
        if waited.cancelled():
            return  # the loop closed first: close() reaps it
        self._close_fd(self._child_pidfds.pop(pid))
        try:
            status = waited.result()
        except ChildProcessError:
            # Reaped by someone else (Popen.poll in close(), or the application): Popen may know.
            code = transp._proc.returncode if transp._proc is not None else None
            if code is None:
                logger.warning("child process pid %d was reaped elsewhere; its returncode is "
                               "reported as 255", pid)
                code = 255
        else:
            code = os.waitstatus_to_exitcode(status)
        transp._process_exited(code)

    async def _resolve(self, sock, address):
        host, port = address[:2]
        try:
            infos = socket.getaddrinfo(host, port, sock.family, sock.type, sock.proto,
                                       socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
        except (socket.gaierror, UnicodeError, TypeError):
            infos = await self.run_in_executor(None, socket.getaddrinfo, host, port,
                                               sock.family, sock.type, sock.proto)
        if not infos:
            raise OSError(f"getaddrinfo({host!r}) returned empty list")
        return infos[0][4]


class _Watched:
    """What asyncio's transports' __repr__ asks of a loop's selector: what an fd is watched for."""

    def __init__(self, loop):
        self._loop = loop

    def get_key(self, fd):
        events = ((selectors.EVENT_READ if fd in self._loop._readers else 0)
                  | (selectors.EVENT_WRITE if fd in self._loop._writers else 0))
        if not events:
            raise KeyError(fd)
        return selectors.SelectorKey(fd, fd, events, None)


class _SendfileFallbackProtocol(base_events._SendfileFallbackProtocol):
    """asyncio's, for aloop's transports (its own checks for asyncio's transport classes)."""

    def __init__(self, transp):
        self._transport = transp
        self._proto = transp.get_protocol()
        self._should_resume_reading = transp.is_reading()
        self._should_resume_writing = transp._protocol_paused
        transp.pause_reading()
        transp.set_protocol(self)
        self._write_ready_fut = (transp._loop.create_future() if self._should_resume_writing
                                 else None)


def _reap(pid):
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _use_pidfd():
    """Whether children are watched through pidfds: where the kernel has them, unless
    ALOOP_PIDFD=0 asks for asyncio's child watcher (the fallback, so that it is tested)."""
    return hasattr(os, "pidfd_open") and os.environ.get("ALOOP_PIDFD") != "0"


def _signal_caught(signum, frame):
    """Python's handler for a signal a loop handles: the loop hears of it on its wake-up socket."""


for _name in _BORROWED:
    setattr(Loop, _name, getattr(base_events.BaseEventLoop, _name))
for _name in _BORROWED_SELECTOR:
    setattr(Loop, _name, getattr(selector_events.BaseSelectorEventLoop, _name))
for _name in _BORROWED_UNIX:
    setattr(Loop, _name, getattr(unix_events._UnixSelectorEventLoop, _name))
del _name

# asyncio's start_tls and sendfile look for these on a transport.
_aloop.Transport._start_tls_compatible = True
_aloop.Transport._sendfile_compatible = constants._SendfileMode.TRY_NATIVE


def new_event_loop(backend=None):
    """A new aloop loop on `backend` (None: $ALOOP_BACKEND, else auto)."""
    return Loop(backend)


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, whose new loops are aloop loops."""

    def __init__(self, backend=None):
        super().__init__()
        self._backend = backend

    def new_event_loop(self):
        return Loop(self._backend)


def install(backend=None):
    """Make aloop the event loop policy: asyncio.run, new_event_loop... give aloop loops."""
    asyncio.set_event_loop_policy(EventLoopPolicy(backend))


def run(main, *, backend=None, debug=None):
    """Run the coroutine main on a new aloop loop and close it, as asyncio.run does."""
    with asyncio.Runner(debug=debug, loop_factory=lambda: Loop(backend)) as runner:
        return runner.run(main)
