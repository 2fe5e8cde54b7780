"""aloop's asyncio event loop: asyncio on aloop's drivers (io_uring, libev, select).

    import aloop
    aloop.run(main())                 # as asyncio.run(main()), on an aloop loop
    aloop.install()                   # every new event loop is an aloop loop
    python3 -m aloop script.py        # an unchanged asyncio program on aloop

backend=None means the C library's default: $ALOOP_BACKEND, else the first driver that works
(io_uring, libev, select).

What a Loop has so far: time, call_soon, call_later, call_at, call_soon_threadsafe, run_forever,
run_until_complete, stop, close, is_closed, is_running, create_future, create_task,
set_task_factory/get_task_factory, add_reader/remove_reader/add_writer/remove_writer, the exception
handler API, get_debug/set_debug, shutdown_asyncgens, shutdown_default_executor, run_in_executor,
set_default_executor, getaddrinfo, getnameinfo, and sock_recv, sock_recv_into, sock_sendall,
sock_accept, sock_connect, sock_recvfrom, sock_recvfrom_into, sock_sendto, sock_sendfile,
add_signal_handler, remove_signal_handler.

Not there yet: create_connection, create_server, create_unix_connection, create_unix_server,
connect_accepted_socket, create_datagram_endpoint, connect_read_pipe, connect_write_pipe,
subprocess_exec, subprocess_shell, start_tls, sendfile.
AbstractEventLoop's stubs for them (which raise NotImplementedError) are hidden: on a Loop they do
not exist (AttributeError, hasattr() is False), so code that checks for a method sees the truth.
"""

import asyncio
import errno
import io
import os
import signal
import socket
import stat
import ssl
import sys
import weakref
from asyncio import base_events
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
        self._close()
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
        return await fut

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
        try:
            fd = file.fileno()
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except (AttributeError, io.UnsupportedOperation, OSError):
            regular = False
        if not regular:
            raise asyncio.SendfileNotAvailableError("not a regular file")
        fut = self.create_future()
        self._sock_sendfile(sock.fileno(), fd, offset, count or 0, fut)
        sent = await fut
        if sent > 0:
            file.seek(offset + sent)  # as asyncio: the position is after what was sent
        return sent

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


def _signal_caught(signum, frame):
    """Python's handler for a signal a loop handles: the loop hears of it on its wake-up socket."""


# What AbstractEventLoop declares and this loop does not do yet (see the docstring above).
_NOT_YET = (
    "create_connection", "create_server", "create_unix_connection",
    "create_unix_server", "connect_accepted_socket", "create_datagram_endpoint",
    "connect_read_pipe", "connect_write_pipe", "subprocess_exec", "subprocess_shell", "start_tls",
    "sendfile",
)


class _NotYet:
    """Hides an inherited AbstractEventLoop stub: the attribute does not exist on a Loop."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        raise AttributeError(f"aloop's Loop has no {self.name}() yet")


for _name in _NOT_YET:
    _descriptor = _NotYet()
    setattr(Loop, _name, _descriptor)
    _descriptor.__set_name__(Loop, _name)
del _descriptor

for _name in _BORROWED:
    setattr(Loop, _name, getattr(base_events.BaseEventLoop, _name))
del _name


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
