"""Real programs, unchanged, on every loop (see conftest.py): an aiohttp web server with its own
client (Debian's python3-aiohttp; scripts/setup installs it), and a pipeline of child processes
whose output feeds the next one's input through the loop."""

import asyncio
import os
import sys

import pytest

from conftest import run

try:
    import aiohttp
    from aiohttp import web
except ImportError:
    if os.environ.get("ALOOP_REQUIRE_ALL_DRIVERS") == "1":  # CI: nothing may be left out
        raise
    pytest.skip("python3-aiohttp is not installed (scripts/setup installs it)",
                allow_module_level=True)


def test_an_aiohttp_server_and_client_exchange_requests(loop):
    async def hello(request):
        name = request.match_info["name"]
        return web.json_response({"hello": name, "n": int(request.query.get("n", 0))})

    async def echo(request):
        return web.Response(body=await request.read())

    async def main():
        app = web.Application()
        app.router.add_get("/hello/{name}", hello)
        app.router.add_post("/echo", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as session:
                for n in range(50):  # keep-alive: one connection, many requests
                    async with session.get(f"http://127.0.0.1:{port}/hello/aloop?n={n}") as r:
                        assert r.status == 200
                        assert await r.json() == {"hello": "aloop", "n": n}
                body = bytes(range(256)) * 2048  # 512 KiB each way (aiohttp takes up to 1 MiB)
                async with session.post(f"http://127.0.0.1:{port}/echo", data=body) as r:
                    assert r.status == 200
                    assert await r.read() == body
                async with session.get(f"http://127.0.0.1:{port}/nothing") as r:
                    assert r.status == 404
        finally:
            await runner.cleanup()

    run(loop, main())


def test_a_pipeline_of_child_processes_through_the_loop(loop):
    # producer | (the loop) | tr a-z A-Z | (the loop) | wc -c, each stage's output handed on
    # by a task, as a shell pipeline would, with the data checked at the end.
    script = "import sys; sys.stdout.write('abc\\n' * 100000)"

    async def main():
        producer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE)
        upper = await asyncio.create_subprocess_exec(
            "tr", "a-z", "A-Z", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)

        async def pump(src, dst):
            while chunk := await src.read(65536):
                dst.write(chunk)
                await dst.drain()
            dst.close()
            await dst.wait_closed()

        pumping = asyncio.ensure_future(pump(producer.stdout, upper.stdin))
        out = await upper.stdout.read()
        await pumping
        assert await producer.wait() == 0
        assert await upper.wait() == 0
        return out

    assert run(loop, main()) == b"ABC\n" * 100000
