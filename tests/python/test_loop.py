"""The loop's scheduling, running, errors and executors, on every loop (see conftest.py)."""

import asyncio
import contextvars
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import TIMEOUT, run

var = contextvars.ContextVar("var", default="unset")


def test_time_is_monotonic_and_advances(loop):
    t0 = loop.time()
    time.sleep(0.01)
    t1 = loop.time()
    assert t0 < t1 < t0 + TIMEOUT


@pytest.mark.uvloop_differs("its own Handle type")
def test_call_soon_runs_in_order_and_returns_a_handle(loop):
    seen = []
    handles = [loop.call_soon(seen.append, i) for i in range(100)]
    assert all(isinstance(h, asyncio.Handle) for h in handles)
    handles[10].cancel()
    assert handles[10].cancelled() and not handles[11].cancelled()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [i for i in range(100) if i != 10]


def test_callbacks_scheduled_by_callbacks_run_in_a_later_round(loop):
    seen = []

    def first():
        seen.append("first")
        loop.call_soon(seen.append, "nested")

    loop.call_soon(first)
    loop.call_soon(seen.append, "second")
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["first", "second", "nested"]


@pytest.mark.uvloop_differs("its own TimerHandle type")
def test_timers_run_in_deadline_order_and_never_early(loop):
    seen = []

    def fire(tag, handle_box):
        seen.append((tag, loop.time() >= handle_box[0].when()))

    boxes = {}
    for tag, delay in (("c", 0.03), ("a", 0.01), ("b", 0.02)):
        boxes[tag] = []
        h = loop.call_later(delay, fire, tag, boxes[tag])
        assert isinstance(h, asyncio.TimerHandle)
        boxes[tag].append(h)
    cancelled = loop.call_later(0.015, seen.append, "cancelled")
    cancelled.cancel()
    run(loop, asyncio.sleep(0.05))
    assert seen == [("a", True), ("b", True), ("c", True)]


@pytest.mark.uvloop_differs("deadlines rounded to milliseconds")
def test_call_at_uses_the_loop_clock(loop):
    fired = []
    when = loop.time() + 0.02
    h = loop.call_at(when, lambda: fired.append(loop.time()))
    assert h.when() == when
    run(loop, asyncio.sleep(0.04))
    assert len(fired) == 1 and fired[0] >= when


@pytest.mark.uvloop_differs("other words")
def test_none_delays_are_refused_as_asyncio_does(loop):
    with pytest.raises(TypeError, match="delay must not be None"):
        loop.call_later(None, print)
    with pytest.raises(TypeError, match="when cannot be None"):
        loop.call_at(None, print)


def test_callbacks_run_in_their_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(var.set, "mine")
    seen, later = [], []
    loop.call_soon(lambda: seen.append(var.get()), context=ctx)
    loop.call_soon(lambda: seen.append(var.get()))
    loop.call_later(0.001, lambda: later.append(var.get()), context=ctx)
    run(loop, asyncio.sleep(0.02))
    assert seen == ["mine", "unset"]
    assert later == ["mine"]


def test_tasks_take_a_name_and_a_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(var.set, "task")

    async def read():
        return var.get()

    task = loop.create_task(read(), name="reader", context=ctx)
    assert task.get_name() == "reader"
    assert run(loop, task) == "task"


def test_task_factory_is_used_and_reported(loop):
    made = []

    def factory(lp, coro, **kwargs):
        made.append(coro)
        return asyncio.Task(coro, loop=lp, **kwargs)

    assert loop.get_task_factory() is None
    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory

    async def one():
        return 1

    assert loop.run_until_complete(loop.create_task(one())) == 1
    assert len(made) == 1
    ctx = contextvars.copy_context()
    ctx.run(var.set, "factory")

    async def read():
        return var.get()

    named = loop.create_task(read(), name="made", context=ctx)
    assert named.get_name() == "made"
    assert loop.run_until_complete(named) == "factory"
    assert len(made) == 2
    with pytest.raises(TypeError):
        loop.set_task_factory(42)
    loop.set_task_factory(None)


def test_call_soon_threadsafe_wakes_a_sleeping_loop(loop):
    fut = loop.create_future()
    ctx = contextvars.copy_context()
    ctx.run(var.set, "thread")

    def from_thread():
        time.sleep(0.05)
        loop.call_soon_threadsafe(lambda: fut.set_result(var.get()), context=ctx)

    t = threading.Thread(target=from_thread)
    t.start()
    try:
        assert run(loop, fut) == "thread"
    finally:
        t.join()


def test_many_threadsafe_calls_all_arrive_once(loop):
    counts = [0] * 4
    done = loop.create_future()
    per_thread = 500

    def bump(i):
        counts[i] += 1
        if sum(counts) == 4 * per_thread and not done.done():
            done.set_result(None)

    def worker(i):
        for _ in range(per_thread):
            loop.call_soon_threadsafe(bump, i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        run(loop, done)
    finally:
        for t in threads:
            t.join()
    assert counts == [per_thread] * 4


def test_run_until_complete_returns_the_result_and_raises_the_error(loop):
    async def ok():
        await asyncio.sleep(0)
        return 42

    async def bad():
        raise KeyError("x")

    assert loop.run_until_complete(ok()) == 42
    with pytest.raises(KeyError):
        loop.run_until_complete(bad())


def test_stop_before_the_future_is_done_is_an_error(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed."):
        loop.run_until_complete(fut)
    fut.cancel()


def test_stop_before_run_forever_runs_one_round(loop):
    seen = []
    loop.call_soon(seen.append, 1)
    loop.stop()
    loop.run_forever()
    assert seen == [1]
    assert not loop.is_running()


@pytest.mark.uvloop_differs("other words")
def test_running_twice_and_closing_while_running_are_refused(loop):
    errors = []

    async def inner():
        assert loop.is_running()
        for attempt in (loop.run_forever, lambda: loop.run_until_complete(loop.create_future()),
                        loop.close):
            try:
                attempt()
            except RuntimeError as e:
                errors.append(str(e))

    coro_errors = run(loop, inner())
    assert coro_errors is None
    assert errors[0] == "This event loop is already running"
    assert errors[1] == "This event loop is already running"
    assert errors[2] == "Cannot close a running event loop"


def test_a_closed_loop_refuses_work(loop):
    assert not loop.is_closed()
    loop.close()
    assert loop.is_closed()
    loop.close()  # twice: nothing
    for attempt in (lambda: loop.call_soon(print), lambda: loop.call_later(1, print),
                    loop.run_forever, lambda: loop.run_until_complete(loop.create_future())):
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            attempt()


def test_an_exception_in_a_callback_reaches_the_handler_and_the_loop_goes_on(loop):
    reports = []
    assert loop.get_exception_handler() is None
    loop.set_exception_handler(lambda lp, ctx: reports.append((lp, ctx)))
    assert loop.get_exception_handler() is not None

    def boom():
        raise ValueError("boom")

    seen = []
    h = loop.call_soon(boom)
    loop.call_soon(seen.append, "after")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["after"]
    assert len(reports) == 1
    lp, ctx = reports[0]
    assert lp is loop
    assert ctx["message"].startswith("Exception in callback")
    assert isinstance(ctx["exception"], ValueError)
    assert ctx["handle"] is h
    loop.set_exception_handler(None)
    with pytest.raises(TypeError):
        loop.set_exception_handler(42)


def test_the_default_exception_handler_logs(loop, caplog):
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "something odd", "exception": OSError(5, "x")})
    assert "something odd" in caplog.text
    assert "OSError" in caplog.text


def test_a_failing_exception_handler_is_reported_by_the_default_one(loop, caplog):
    def bad_handler(lp, ctx):
        raise RuntimeError("handler broke")

    loop.set_exception_handler(bad_handler)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "first"})
    assert "Unhandled error in exception handler" in caplog.text
    assert "handler broke" in caplog.text
    loop.set_exception_handler(None)


@pytest.mark.uvloop_differs("runs the rest of the round first")
def test_a_keyboard_interrupt_in_a_callback_leaves_run_forever(loop):
    def interrupt():
        raise KeyboardInterrupt

    seen = []
    loop.call_soon(interrupt)
    loop.call_soon(seen.append, 1)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert not loop.is_running()
    assert seen == []  # the rest of the round waits for the next run
    loop.call_soon(seen.append, 2)
    loop.call_soon(loop.stop)
    loop.run_forever()  # still usable
    assert seen == [1, 2]


@pytest.mark.uvloop_differs("no callback check in debug mode")
def test_debug_mode_can_be_switched(loop):
    loop.set_debug(True)
    assert loop.get_debug()
    with pytest.raises(TypeError, match="coroutines cannot be used with call_soon"):
        loop.call_soon(asyncio.sleep)
    loop.set_debug(False)
    assert not loop.get_debug()


def test_debug_mode_refuses_call_soon_from_another_thread(loop):
    loop.set_debug(True)
    errors = []

    async def main():
        def other():
            try:
                loop.call_soon(print)
            except RuntimeError as e:
                errors.append(str(e))

        t = threading.Thread(target=other)
        t.start()
        await loop.run_in_executor(None, t.join)

    run(loop, main())
    loop.set_debug(False)
    assert len(errors) == 1 and "thread" in errors[0]


@pytest.mark.uvloop_differs("remove_writer returns None")
def test_readers_and_writers_on_a_socketpair(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        got = loop.create_future()
        writable = loop.create_future()

        def on_readable():
            data = b.recv(100)
            if not got.done():
                got.set_result(data)

        loop.add_reader(b, on_readable)          # a file object
        loop.add_writer(a.fileno(), lambda: writable.done() or writable.set_result(True))
        assert run(loop, writable) is True
        assert loop.remove_writer(a.fileno()) is True
        assert loop.remove_writer(a.fileno()) is False
        a.send(b"ping")
        assert run(loop, got) == b"ping"
        assert loop.remove_reader(b) is True
        assert loop.remove_reader(b.fileno()) is False
        with pytest.raises(ValueError):
            loop.add_reader(-1, print)
        with pytest.raises(ValueError):
            loop.add_reader(object(), print)
    finally:
        a.close()
        b.close()


def test_a_removed_reader_does_not_run(loop):
    a, b = socket.socketpair()
    try:
        seen = []
        loop.add_reader(b.fileno(), seen.append, "read")
        loop.remove_reader(b.fileno())
        a.send(b"x")
        run(loop, asyncio.sleep(0.02))
        assert seen == []
    finally:
        a.close()
        b.close()


def test_run_in_executor_and_a_default_executor(loop):
    assert run(loop, loop.run_in_executor(None, sum, [1, 2, 3])) == 6
    ex = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(ex)
    name = run(loop, loop.run_in_executor(None, lambda: threading.current_thread().name))
    assert name != threading.current_thread().name
    assert run(loop, loop.run_in_executor(ex, pow, 2, 10)) == 1024
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
        loop.run_in_executor(None, sum, [1])


@pytest.mark.uvloop_differs("takes any executor")
def test_only_a_thread_pool_can_be_the_default_executor(loop):
    with pytest.raises(TypeError, match="executor must be ThreadPoolExecutor"):
        loop.set_default_executor(object())


def test_shutdown_asyncgens_finalizes_unfinished_generators(loop):
    finalized = []

    async def gen():
        try:
            yield 1
            yield 2
        finally:
            finalized.append(True)

    async def take_one():
        g = gen()
        assert await g.__anext__() == 1
        return g

    g = run(loop, take_one())
    assert finalized == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert finalized == [True]
    del g


def test_asyncio_run_style_programs_work(loop_kind, loop):
    async def main():
        q = asyncio.Queue()
        async def producer():
            for i in range(50):
                await q.put(i)
                await asyncio.sleep(0)
        p = asyncio.create_task(producer())
        got = [await q.get() for _ in range(50)]
        await p
        res = await asyncio.gather(*(asyncio.sleep(0.001, result=i) for i in range(20)))
        try:
            await asyncio.wait_for(asyncio.sleep(5), 0.01)
        except asyncio.TimeoutError:
            timed_out = True
        return got, res, timed_out

    got, res, timed_out = run(loop, main())
    assert got == list(range(50)) and res == list(range(20)) and timed_out


def test_closing_lets_go_of_pending_callbacks(loop):
    import gc
    import weakref

    class Target:
        def method(self):
            pass

    target = Target()
    ref = weakref.ref(target)
    loop.call_later(3600, target.method)
    loop.call_soon(target.method)
    loop.call_soon_threadsafe(target.method)
    del target
    loop.close()
    gc.collect()
    assert ref() is None


def test_the_interpreter_lock_is_free_while_the_loop_sleeps(loop):
    counted = []
    stop = threading.Event()

    def count():
        n = 0
        while not stop.is_set():
            n += 1
            time.sleep(0.001)
        counted.append(n)

    t = threading.Thread(target=count)
    t.start()
    try:
        run(loop, asyncio.sleep(0.2))
    finally:
        stop.set()
        t.join()
    assert counted[0] > 5


def test_loops_run_in_two_threads_at_once(loop_kind, loop):
    from conftest import make_loop
    results = []

    def other():
        lp = make_loop(loop_kind)
        try:
            results.append(lp.run_until_complete(asyncio.sleep(0.1, result="other")))
        finally:
            lp.close()

    t = threading.Thread(target=other)
    t.start()
    try:
        results.append(run(loop, asyncio.sleep(0.1, result="main")))
    finally:
        t.join()
    assert sorted(results) == ["main", "other"]


@pytest.mark.uvloop_differs("it has no sendfile or sock_sendfile")
def test_every_method_of_abstract_event_loop_is_implemented(loop):
    # AbstractEventLoop's own methods raise NotImplementedError: none may be left on a loop.
    stubs = [name for name, value in vars(asyncio.AbstractEventLoop).items()
             if callable(value) and not name.startswith("__")
             and getattr(type(loop), name) is value]
    assert stubs == []
    assert isinstance(loop, asyncio.AbstractEventLoop)
