"""Every test runs on asyncio's own loop, on each aloop driver and on uvloop where it is installed:
the same assertions on every loop, so a difference from asyncio is a failure.

A driver this kernel refuses is skipped, unless ALOOP_REQUIRE_ALL_DRIVERS=1 (as the C suite)."""

import asyncio
import gc
import os

import pytest

import aloop

try:
    import uvloop
except ImportError:
    uvloop = None
else:
    # uvloop keeps a process-wide pipe from its first loop on: open it now, before any fd count.
    uvloop.new_event_loop().close()

# Generous bounds: every wait in a test ends within this, on a busy machine too.
TIMEOUT = 10.0


def pytest_configure(config):
    config.addinivalue_line("markers", "uvloop_differs(why): uvloop is known to differ from "
                            "asyncio here; its run is an expected failure, asyncio's and aloop's not")
    config.addinivalue_line("markers", "uvloop_crashes(why): uvloop aborts the process here; its "
                            "run is skipped (shown as such), asyncio's and aloop's run")


def pytest_collection_modifyitems(config, items):
    for item in items:
        mark = item.get_closest_marker("uvloop_differs")
        callspec = getattr(item, "callspec", None)
        if mark and callspec and callspec.id.startswith("uvloop"):
            item.add_marker(pytest.mark.xfail(reason=f"uvloop: {mark.args[0]}", strict=False))
        crash = item.get_closest_marker("uvloop_crashes")
        if crash and callspec and callspec.id.startswith("uvloop"):
            item.add_marker(pytest.mark.skip(reason=f"uvloop aborts: {crash.args[0]}"))


def loop_kinds():
    kinds = [pytest.param(("asyncio", None, ""), id="asyncio")]
    for name, available, reason in aloop.backends():
        kinds.append(pytest.param(("aloop", name, "" if available else reason), id=name))
    if uvloop is not None:
        kinds.append(pytest.param(("uvloop", None, ""), id="uvloop"))
    return kinds


def make_loop(kind):
    family, backend, refused = kind
    if refused:
        if os.environ.get("ALOOP_REQUIRE_ALL_DRIVERS") == "1":
            pytest.fail(f"driver {backend} is compiled but refused here: {refused}")
        pytest.skip(f"driver {backend} refused here: {refused}")
    if family == "asyncio":
        return asyncio.SelectorEventLoop()
    if family == "uvloop":
        return uvloop.new_event_loop()
    return aloop.new_event_loop(backend)


@pytest.fixture(params=loop_kinds())
def loop_kind(request):
    return request.param


@pytest.fixture
def loop(loop_kind):
    lp = make_loop(loop_kind)
    yield lp
    if lp.is_running():
        lp.stop()
    if not lp.is_closed():
        lp.run_until_complete(lp.shutdown_default_executor())
        lp.close()


def open_fds():
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_fd_left_open():
    gc.collect()
    before = open_fds()
    yield
    gc.collect()
    after = open_fds()
    leaked = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in after - before
              if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not leaked, f"fds left open: {leaked}"


def run(loop, coro, timeout=TIMEOUT):
    """Run coro on loop, bounded in time."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


async def cancel_while_pending(awaitable):
    """Start awaitable, check that it waits (nothing can have arrived for it), cancel it, and see
    it end cancelled; then give the loop a turn to let the cancelled operation go."""
    pending = asyncio.ensure_future(awaitable)
    await asyncio.sleep(0.02)
    assert not pending.done()
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await asyncio.sleep(0.01)
