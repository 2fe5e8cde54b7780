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


def run_on_loop(args, main, name):
    """asyncio.run(main) on the loop args.loop names: main's result, or 3 (said in words on
    stderr) when that loop is not installed."""
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError as e:
            print(f"{name}: uvloop is not available to {sys.executable} ({e}); "
                  "install it with: apt-get install python3-uvloop", file=sys.stderr, flush=True)
            main.close()
            return 3
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    elif args.loop == "aloop":
        try:
            import aloop
        except ImportError as e:
            print(f"{name}: aloop's Python module is not importable ({e}); set PYTHONPATH to "
                  "BUILD/python", file=sys.stderr, flush=True)
            main.close()
            return 3
        return aloop.run(main, backend=args.backend)
    return asyncio.run(main)
