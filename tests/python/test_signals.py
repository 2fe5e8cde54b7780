"""add_signal_handler and remove_signal_handler, on every loop (see conftest.py): the process sends
itself SIGUSR1 (or SIGINT) with os.kill and the handler runs in the loop; asyncio's errors."""

import asyncio
import os
import signal
import threading

import pytest

from conftest import run


@pytest.fixture(autouse=True)
def default_dispositions():
    yield
    # Whatever a test did, the next one starts from Python's own dispositions.
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def test_the_handler_runs_in_the_loop_with_its_arguments(loop):
    async def main():
        heard = loop.create_future()

        def handler(*args):
            heard.set_result((args, asyncio.get_running_loop() is loop))

        assert loop.add_signal_handler(signal.SIGUSR1, handler, "a", 1) is None
        os.kill(os.getpid(), signal.SIGUSR1)
        result = await heard
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
        assert loop.remove_signal_handler(signal.SIGUSR1) is False
        return result

    assert run(loop, main()) == (("a", 1), True)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_the_handler_runs_on_every_delivery_until_removed(loop):
    count = []

    async def main():
        loop.add_signal_handler(signal.SIGUSR1, count.append, 1)
        for expected in (1, 2, 3):
            os.kill(os.getpid(), signal.SIGUSR1)
            while len(count) < expected:
                await asyncio.sleep(0.001)
        assert loop.remove_signal_handler(signal.SIGUSR1)

    run(loop, main())
    assert count == [1, 1, 1]


@pytest.mark.uvloop_differs("a signal that arrives while the loop is not running is lost, and "
                            "remove_signal_handler outside a run returns False")
def test_a_signal_that_arrives_between_runs_is_handled_in_the_next(loop):
    heard = []
    loop.add_signal_handler(signal.SIGUSR1, heard.append, "usr1")
    os.kill(os.getpid(), signal.SIGUSR1)

    async def main():
        while not heard:
            await asyncio.sleep(0.001)

    run(loop, main())
    assert heard == ["usr1"]
    assert loop.remove_signal_handler(signal.SIGUSR1)


def test_a_sigint_handler_replaces_keyboard_interrupt_until_removed(loop):
    async def main():
        heard = loop.create_future()
        loop.add_signal_handler(signal.SIGINT, heard.set_result, "sigint")
        os.kill(os.getpid(), signal.SIGINT)
        result = await heard
        assert loop.remove_signal_handler(signal.SIGINT)
        return result

    assert run(loop, main()) == "sigint"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.uvloop_differs("close leaves uvloop's own Python signal handler in place")
def test_close_removes_the_handlers(loop):
    loop.add_signal_handler(signal.SIGUSR1, print)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_asyncio_s_errors(loop):
    async def coroutine_function():
        pass

    with pytest.raises(TypeError, match=r"coroutines cannot be used with add_signal_handler\(\)"):
        loop.add_signal_handler(signal.SIGUSR1, coroutine_function)
    with pytest.raises(TypeError, match="sig must be an int, not 'x'"):
        loop.add_signal_handler("x", print)
    for sig in (signal.SIGKILL, signal.SIGSTOP):
        with pytest.raises(RuntimeError, match=f"sig {sig:d} cannot be caught"):
            loop.add_signal_handler(sig, print)
    assert loop.remove_signal_handler(signal.SIGUSR2) is False


@pytest.mark.uvloop_differs("its words: 'sig 0 out of range(1, 65)'")
def test_an_invalid_signal_number_is_value_error(loop):
    with pytest.raises(ValueError, match="invalid signal number 0"):
        loop.add_signal_handler(0, print)
    with pytest.raises(ValueError, match="invalid signal number 100000"):
        loop.remove_signal_handler(100000)


@pytest.mark.uvloop_differs("ValueError, not asyncio's RuntimeError")
def test_only_the_main_thread_may_add_one(loop):
    caught = []

    def other():
        try:
            loop.add_signal_handler(signal.SIGUSR1, print)
        except Exception as exc:
            caught.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    assert len(caught) == 1 and isinstance(caught[0], RuntimeError), caught
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_a_closed_loop_refuses(loop):
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_signal_handler(signal.SIGUSR1, print)
