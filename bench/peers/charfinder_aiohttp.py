#!/usr/bin/python3
# Reference peer for aloop's charfinder benchmark: Fluent Python's http_charfinder.py on aiohttp,
# doing the same work per request as aloop-charfinder's HTTP server.
#
# The index is built at start the original way (charfinder.py's UnicodeNameIndex.build_index):
# every code point from 32 to sys.maxunicode - 1 that unicodedata names, CJK ideographs indexed
# only by the words of their common prefix, a dict from each upper-cased \w+ word to the set of
# characters with it. A query is the intersection of its words' sets, sorted (find_chars).
#
# The page is aloop's page byte for byte (apps/charfinder/http.c): the same head, search form,
# sample-word links, status message (the original's status(), with repr), the first 200 rows of
# results, and "N of M shown" when there are more; user-supplied text is HTML-escaped.
# /api/search?query=&start=&stop= answers with the same JSON fields as aloop's.
#
# Runs under Debian's /usr/bin/python3, where Debian's python3-aiohttp is. Prints
# "charfinder-aiohttp: listening on HOST:PORT" once listening, logs no request, and stops cleanly
# on SIGINT/SIGTERM ("charfinder-aiohttp: stopped", status 0); status 3 if aiohttp is missing.

import argparse
import asyncio
import functools
import html
import itertools
import json
import re
import signal
import sys
import unicodedata

# beside this file
from peer_args import add_listen_args, add_loop_args, format_addr, run_on_loop

NAME = "charfinder-aiohttp"
BACKLOG = 1024
PAGE_ROWS = 200       # rows in the page
API_MAX_ROWS = 1000   # items in one API response at most

RE_WORD = re.compile(r"\w+")
CJK_UNI_PREFIX = "CJK UNIFIED IDEOGRAPH"
CJK_CMP_PREFIX = "CJK COMPATIBILITY IDEOGRAPH"

# In the order aloop's page lists them.
SAMPLE_WORDS = ["bismillah", "Braille", "black", "cat", "chess", "circled", "digit", "dot",
                "Ethiopic", "face", "hexagram", "Malayalam", "mark", "operator", "Roman", "symbol"]
LINK_TPL = '<a href="/?query={0}" title="find &quot;{0}&quot;">{0}</a>'
LINKS_HTML = ", ".join(LINK_TPL.format(word) for word in SAMPLE_WORDS)
ROW_TPL = "<tr><td>{code_str}</td><th>{char}</th><td>{name}</td></tr>\n"

PAGE_HEAD = (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    "<title>Charfinder</title>\n"
    "<style>body{font-family:sans-serif}th{font-size:150%;font-weight:normal;padding:0 1em}"
    "td{font-family:monospace}</style>\n</head>\n<body>\n<form action=\"/\">\n"
    '<input type="search" name="query" value="')
PAGE_FORM_END = ('" autofocus>\n<input type="submit" value="find">\nExamples: ' + LINKS_HTML
                 + '\n</form>\n<p id="status">')
PAGE_TAIL = '<script src="/charfinder.js"></script>\n</body>\n</html>\n'


def escape(text):
    """html.escape, with the apostrophe written as aloop writes it, so the pages are the same."""
    return html.escape(text).replace("&#x27;", "&#39;")


# --- charfinder.py, the parts the server uses ---------------------------------------------------

def tokenize(text):
    """Upper-cased words."""
    for match in RE_WORD.finditer(text):
        yield match.group().upper()


class UnicodeNameIndex:
    def __init__(self):
        index, named = {}, 0
        for char in (chr(i) for i in range(32, sys.maxunicode)):
            try:
                name = unicodedata.name(char)
            except ValueError:
                continue
            named += 1
            if name.startswith(CJK_UNI_PREFIX):
                name = CJK_UNI_PREFIX
            elif name.startswith(CJK_CMP_PREFIX):
                name = CJK_CMP_PREFIX
            for word in tokenize(name):
                index.setdefault(word, set()).add(char)
        self.index = index
        self.size = named

    def find_chars(self, query, start=0, stop=None):
        """(count, chars[start:stop]) of the characters whose names have every word of query."""
        stop = sys.maxsize if stop is None else stop
        result_sets = []
        for word in tokenize(query):
            chars = self.index.get(word)
            if chars is None:  # no such word: no match
                result_sets = []
                break
            result_sets.append(chars)
        if not result_sets:
            return 0, []
        result = functools.reduce(set.intersection, result_sets)
        result = sorted(result)  # sorted, for start and stop
        return len(result), list(itertools.islice(result, start, stop))

    @staticmethod
    def describe(char):
        return "U+{:04X}".format(ord(char)), char, unicodedata.name(char)

    @staticmethod
    def status(query, counter):
        if counter == 0:
            msg = "No match"
        elif counter == 1:
            msg = "1 match"
        else:
            msg = "{} matches".format(counter)
        return "{} for {!r}".format(msg, query)


# --- the HTTP server ----------------------------------------------------------------------------

def make_app(web, index):
    def bad_request(why):
        return web.Response(status=400, text=f"400 Bad Request: {why}\n",
                            content_type="text/plain", charset="utf-8")

    async def home(request):
        query = request.query.get("query", "").strip()
        if query:
            count, chars = index.find_chars(query, 0, PAGE_ROWS)
            msg = index.status(query, count)
        else:
            count, chars = 0, []
            msg = "Enter words describing characters."
        q = escape(query)
        parts = [PAGE_HEAD, q, PAGE_FORM_END, escape(msg),
                 '</p>\n<hr>\n<table id="results" data-query="', q,
                 f'" data-count="{count}" data-shown="{len(chars)}">\n']
        for char in chars:
            code_str, ch, name = index.describe(char)
            parts.append(ROW_TPL.format(code_str=code_str, char=escape(ch), name=name))
        parts.append("</table>\n")
        if len(chars) < count:
            parts.append(f'<p id="more">{len(chars)} of {count} shown; scroll for more.</p>\n')
        parts.append(PAGE_TAIL)
        return web.Response(text="".join(parts), content_type="text/html", charset="utf-8")

    def whole_number(request, key):
        value = request.query.get(key)
        if value is None:
            return -1
        if not (0 < len(value) < 12 and value.isascii() and value.isdigit()):
            raise ValueError(f"{key} must be a whole number")
        return int(value)

    async def api_search(request):
        query = request.query.get("query", "").strip()
        try:
            start, stop = whole_number(request, "start"), whole_number(request, "stop")
        except ValueError as e:
            return bad_request(str(e))
        start = max(start, 0)
        if stop < 0:
            stop = start + PAGE_ROWS
        stop = min(stop, start + API_MAX_ROWS)
        count, chars = index.find_chars(query, start, stop) if query else (0, [])
        first = min(start, count)
        items = []
        for char in chars:
            code_str, ch, name = index.describe(char)
            items.append({"code": code_str, "char": ch, "name": name})
        body = json.dumps({"query": query, "count": count, "start": first,
                           "stop": first + len(items), "items": items},
                          ensure_ascii=False, separators=(",", ":"))
        return web.Response(text=body + "\n", content_type="application/json")

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/api/search", api_search)
    return app


def parse_args():
    p = argparse.ArgumentParser(
        description="Fluent Python's http_charfinder on aiohttp (reference peer for aloop's "
                    "charfinder benchmark)")
    add_listen_args(p)
    add_loop_args(p)
    return p.parse_args()


async def main(args, web):
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    index = UnicodeNameIndex()
    runner = web.AppRunner(make_app(web, index), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=BACKLOG, shutdown_timeout=2.0)
    try:
        await site.start()
    except OSError as e:
        print(f"{NAME}: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr,
              flush=True)
        await runner.cleanup()
        return 1
    print(f"{NAME}: listening on {format_addr(runner.addresses[0])}", flush=True)
    print(f"{NAME}: {index.size} characters indexed (Unicode {unicodedata.unidata_version})",
          flush=True)
    await stopping.wait()
    await runner.cleanup()
    print(f"{NAME}: stopped", flush=True)
    return 0


def run():
    args = parse_args()
    try:
        from aiohttp import web
    except ImportError as e:
        print(f"{NAME}: aiohttp is not available to {sys.executable} ({e}); "
              "install it with: apt-get install python3-aiohttp", file=sys.stderr, flush=True)
        return 3
    return run_on_loop(args, main(args, web), NAME)


if __name__ == "__main__":
    sys.exit(run())
