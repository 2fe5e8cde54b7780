#!/usr/bin/env python3
"""aloop-charfinder against the original: Fluent Python's charfinder algorithm, written here the
way the original does it (unicodedata names, \\w+ words upper-cased, sets, intersection, sorted),
run on this machine's Python. For each query, the result lines aloop prints must be the original's,
byte for byte, over the characters both Unicode databases name (Python's unicodedata may be an
older Unicode version than Debian's unicode-data), and the status line must match when every
character found is known to both.

usage: charfinder_original.py PROGRAM   (exit 0: all equal; 1: differences, listed)"""
import functools
import os
import re
import subprocess
import sys
import unicodedata

RE_WORD = re.compile(r"\w+")
CJK_PREFIXES = ("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH")
QUERIES = ["cat", "cat face", "chess black", "cjk", "CJK unified", "hangul", "hangul gag", "it's",
           "\ufb01", "\u00df", "digit nine", "a", "latin small letter a", "", "   ", "x_y",
           "\u00e9", "\u03a3\u0391", "braille pattern dots-1", "12", "sign", "with", "'\"",
           "tab\there", "khitan 18B00", "nushu", "compatibility", "cjk compatibility ideograph",
           "ideograph", "SS", "\u0661", "letter", "\u01c5", "\u00bd", "\ufb03", "4E00",
           "squared", "mathematical bold", "arrow", "zzzq", "BLACK-chess!!king"]


def tokenize(text):
    for m in RE_WORD.finditer(text):
        yield m.group().upper()


def build_index():
    index = {}
    for i in range(32, sys.maxunicode):
        char = chr(i)
        name = unicodedata.name(char, None)
        if name is None:
            continue
        for prefix in CJK_PREFIXES:
            if name.startswith(prefix):
                name = prefix
        for word in tokenize(name):
            index.setdefault(word, set()).add(char)
    return index


def find(index, query):
    sets = []
    for word in tokenize(query):
        chars = index.get(word)
        if chars is None:
            return []
        sets.append(chars)
    return sorted(functools.reduce(set.intersection, sets)) if sets else []


def status(query, n):
    msg = "No match" if n == 0 else "1 match" if n == 1 else f"{n} matches"
    return f"{msg} for {query!r}"


def main():
    program = sys.argv[1]
    index = build_index()
    differences = 0
    for q in QUERIES:
        want = [f"{'U+%04X' % ord(c):7}\t{c}\t{unicodedata.name(c)}" for c in find(index, q)]
        out = subprocess.run([program, "query", q], capture_output=True, check=True,
                             timeout=60).stdout.decode().split("\n")
        lines, got_status = out[:-2], out[-2]
        known = [ln for ln in lines
                 if unicodedata.name(chr(int(ln.split("\t")[0][2:], 16)), None)]
        if known != want:
            differences += 1
            print(f"DIFFERENT {q!r}: aloop {len(known)} lines, original {len(want)}")
            for ln in sorted(set(known) ^ set(want))[:10]:
                print("   ", ln)
        if len(known) == len(lines) and got_status != f"({status(q, len(want))})":
            differences += 1
            print(f"DIFFERENT status for {q!r}: {got_status} vs ({status(q, len(want))})")
    print(f"{len(QUERIES)} queries, {differences} differences (Python's Unicode "
          f"{unicodedata.unidata_version})")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
