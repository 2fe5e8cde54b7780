"""python3 -m aloop [--backend B] script.py ARGS... | -m module ARGS...: run an asyncio program on
aloop's loop (the policy is installed first, so asyncio.run and friends make aloop loops)."""

import os
import runpy
import sys

USAGE = """usage: python3 -m aloop [--backend NAME] script.py [ARGS...]
       python3 -m aloop [--backend NAME] -m module [ARGS...]
       python3 -m aloop --list-backends

Runs an asyncio program on aloop's event loop. NAME is a driver (see --list-backends);
without --backend: $ALOOP_BACKEND, else the first that works here.
"""


def fail(message):
    sys.stderr.write(f"python3 -m aloop: {message}\n{USAGE}")
    sys.exit(2)


def list_backends():
    from . import backends
    for name, available, reason in backends():
        print(f"{name}\t{'yes' if available else 'no'}\t{reason}")
    return 0


def parse(argv):
    """(backend, module, target, args) from the command line, or exit 2 with why."""
    backend = None
    while argv:
        arg = argv[0]
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            sys.exit(0)
        if arg == "--list-backends":
            sys.exit(list_backends())
        if arg == "--backend" or arg.startswith("--backend="):
            if "=" in arg:
                backend, argv = arg.split("=", 1)[1], argv[1:]
            elif len(argv) < 2:
                fail("--backend needs a driver name")
            else:
                backend, argv = argv[1], argv[2:]
            continue
        if arg == "-m":
            if len(argv) < 2:
                fail("-m needs a module name")
            return backend, True, argv[1], argv[2:]
        if arg.startswith("-"):
            fail(f"unknown option {arg!r}")
        return backend, False, arg, argv[1:]
    fail("nothing to run")


def main():
    backend, is_module, target, args = parse(sys.argv[1:])
    from . import Loop, install, backends
    chosen = backend if backend is not None else os.environ.get("ALOOP_BACKEND") or None
    if chosen is not None:
        names = [b[0] for b in backends()]
        origin = "--backend" if backend is not None else "ALOOP_BACKEND"
        if chosen not in names and chosen != "auto":
            fail(f"unknown driver {chosen!r} in {origin} (compiled here: {', '.join(names)})")
        try:
            Loop(backend).close()
        except (ValueError, OSError) as e:
            fail(str(e))
    install(backend)
    sys.argv = [target] + args
    if is_module:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        runpy.run_path(target, run_name="__main__")


if __name__ == "__main__":
    main()
