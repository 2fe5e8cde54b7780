"""getaddrinfo and getnameinfo, on every loop (see conftest.py): numeric names only, so nothing
leaves the machine."""

import asyncio
import socket

import pytest

from conftest import run


def test_getaddrinfo_gives_what_the_socket_module_gives(loop):
    async def main():
        return await loop.getaddrinfo("127.0.0.1", 8080, family=socket.AF_INET,
                                      type=socket.SOCK_STREAM)

    expected = socket.getaddrinfo("127.0.0.1", 8080, socket.AF_INET, socket.SOCK_STREAM)
    assert run(loop, main()) == expected
    assert run(loop, main())[0][4] == ("127.0.0.1", 8080)


def test_getaddrinfo_passes_flags_and_proto(loop):
    async def main():
        return await loop.getaddrinfo("::1", "53", type=socket.SOCK_DGRAM,
                                      proto=socket.IPPROTO_UDP,
                                      flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)

    expected = socket.getaddrinfo("::1", "53", 0, socket.SOCK_DGRAM, socket.IPPROTO_UDP,
                                  socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
    assert run(loop, main()) == expected


def test_getaddrinfo_errors_are_gaierror(loop):
    async def main():
        with pytest.raises(socket.gaierror):
            await loop.getaddrinfo("not an address", 80, flags=socket.AI_NUMERICHOST)

    run(loop, main())


def test_getaddrinfo_is_a_coroutine_and_takes_its_options_by_keyword_only(loop):
    with pytest.raises(TypeError):
        loop.getaddrinfo("127.0.0.1", 80, socket.AF_INET)
    coro = loop.getaddrinfo("127.0.0.1", 80)
    assert asyncio.iscoroutine(coro)
    run(loop, coro)


def test_getnameinfo_gives_what_the_socket_module_gives(loop):
    flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV

    async def main():
        return (await loop.getnameinfo(("127.0.0.1", 8080), flags),
                await loop.getnameinfo(("::1", 53, 0, 0), flags=flags))

    assert run(loop, main()) == (("127.0.0.1", "8080"), ("::1", "53"))


def test_getnameinfo_errors_are_the_socket_module_s(loop):
    async def main():
        with pytest.raises(TypeError):
            await loop.getnameinfo("127.0.0.1")

    run(loop, main())
