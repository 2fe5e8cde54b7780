"""What the Python peers share: --host/--port and --loop/--backend on the command line, the
address they print, and running on the loop asked for."""
import argparse
import asyncio
import sys


def port_number(text):
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port: {text!r}")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 0..65535: {value}")
    return value


def add_listen_args(parser):
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8888,
                        help="port to listen on, 0 = ephemeral (default: 8888)")


def format_addr(sockname):
    host, port = sockname[0], sockname[1]
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def add_loop_args(parser):
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "aloop"), default="asyncio",
                        help="event loop implementation (default: asyncio); aloop: aloop's "
                             "asyncio loop (PYTHONPATH=BUILD/python), on --backend")
    parser.add_argument("--backend", default=None,
                        help="with --loop aloop: the driver (default: $ALOOP_BACKEND, else auto)")


def _import_loop(module, name, hint):
    """The loop's module, or None (said in words on stderr) when it cannot be imported."""
    try:
        return __import__(module)
    except ImportError as e:
        print(f"{name}: {module} is not importable by {sys.executable} ({e}); {hint}",
              file=sys.stderr, flush=True)
        return None


def run_on_loop(args, main, name):
    """asyncio.run(main) on the loop args.loop names: main's result, or 3 (said in words on
    stderr) when that loop is not installed."""
    if args.loop == "asyncio":
        return asyncio.run(main)
    hint = ("install it with: apt-get install python3-uvloop" if args.loop == "uvloop"
            else "set PYTHONPATH to BUILD/python")
    module = _import_loop(args.loop, name, hint)
    if module is None:
        main.close()
        return 3
    if args.loop == "aloop":
        return module.run(main, backend=args.backend)
    asyncio.set_event_loop_policy(module.EventLoopPolicy())
    return asyncio.run(main)
