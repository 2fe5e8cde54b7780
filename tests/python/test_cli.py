"""python3 -m aloop: unchanged asyncio programs on each driver, --list-backends, bad flags, Ctrl-C.
Each program runs in a child Python with this one's environment (PYTHONPATH, and under the
sanitizer build LD_PRELOAD), bounded in time."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import aloop

TIMEOUT = 30

PROGRAM = textwrap.dedent("""
    import asyncio, sys

    async def main():
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.01)
        r = await loop.run_in_executor(None, sum, [1, 2, 3])
        print(type(loop).__module__, getattr(loop, "backend", "-"), r, sys.argv[1:])

    asyncio.run(main())
""")

SLEEPER = textwrap.dedent("""
    import asyncio

    async def main():
        print("ready", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
""")


def usable_backends():
    return [name for name, available, _ in aloop.backends() if available]


def python(*args, **kwargs):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=TIMEOUT, **kwargs)


@pytest.fixture
def script(tmp_path):
    def write(text, name="prog.py"):
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


@pytest.mark.parametrize("backend", usable_backends())
def test_an_unchanged_asyncio_script_runs_on_each_driver(backend, script):
    r = python("-m", "aloop", "--backend", backend, str(script(PROGRAM)), "a", "b")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["aloop", backend, "6", "['a',", "'b']"]


def test_a_module_runs_with_dash_m(script):
    path = script(PROGRAM, "aloop_test_prog.py")
    r = python("-m", "aloop", "-m", "aloop_test_prog", "x",
               env={**os.environ, "PYTHONPATH": f"{path.parent}:{os.environ.get('PYTHONPATH', '')}"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "aloop"
    assert r.stdout.split()[-1] == "['x']"


def test_aloop_backend_is_honoured(script):
    backend = usable_backends()[-1]
    r = python("-m", "aloop", str(script(PROGRAM)), env={**os.environ, "ALOOP_BACKEND": backend})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1] == backend


def test_an_unknown_driver_in_aloop_backend_exits_2(script):
    r = python("-m", "aloop", str(script(PROGRAM)), env={**os.environ, "ALOOP_BACKEND": "nosuch"})
    assert r.returncode == 2
    assert "unknown driver 'nosuch' in ALOOP_BACKEND" in r.stderr


def test_list_backends_names_every_compiled_driver():
    r = python("-m", "aloop", "--list-backends")
    assert r.returncode == 0, r.stderr
    lines = [line.split("\t") for line in r.stdout.splitlines()]
    assert [line[0] for line in lines] == [name for name, _, _ in aloop.backends()]
    assert all(line[1] in ("yes", "no") for line in lines)
    assert "select" in r.stdout


def test_help_exits_0():
    r = python("-m", "aloop", "--help")
    assert r.returncode == 0 and "usage" in r.stdout


@pytest.mark.parametrize("args, words", [
    (["--frobnicate", "x.py"], "unknown option"),
    (["--backend", "nosuch", "x.py"], "unknown driver"),
    (["--backend"], "needs a driver name"),
    ([], "nothing to run"),
    (["-m"], "needs a module name"),
])
def test_bad_command_lines_exit_2_with_words(args, words):
    r = python("-m", "aloop", *args)
    assert r.returncode == 2
    assert words in r.stderr and "usage" in r.stderr


@pytest.mark.parametrize("backend", usable_backends())
def test_ctrl_c_stops_a_sleeping_program_with_keyboard_interrupt(backend, script):
    # SIGINT at its default in the child, as under a terminal: a shell that runs the suite in the
    # background hands its jobs SIGINT ignored, and Python then installs no KeyboardInterrupt.
    child = subprocess.Popen([sys.executable, "-m", "aloop", "--backend", backend,
                              str(script(SLEEPER))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert child.stdout.readline() == "ready\n"
        time.sleep(0.1)  # asleep in the driver's wait
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert "KeyboardInterrupt" in err
    assert child.returncode in (-signal.SIGINT, 128 + signal.SIGINT, 1)
