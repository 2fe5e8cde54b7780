#!/bin/sh
# The Python module's suite (pytest) against the uninstalled build: every test on asyncio's own
# loop, on each aloop driver and on uvloop where installed. Run by make check, which sets
# top_srcdir, top_builddir and the ALOOP_* variables below (see Makefile.am).
# Exit 77 (SKIP) only when the module was not built, saying why.
set -eu
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$(pwd)}"
python=${ALOOP_PYTHON:-/usr/bin/python3}

if [ "${ALOOP_PYTHON_BUILT:-no}" != yes ]; then
  echo "tests/python: SKIP: the Python module was not built (configure found no Python headers," \
       "or --without-python; Debian: python3-dev)" >&2
  exit 77
fi
if ! "$python" -c 'import pytest' 2>/dev/null; then
  echo "tests/python: $python has no pytest (Debian: python3-pytest; scripts/setup installs it)" >&2
  exit 1
fi

PYTHONPATH="$top_builddir/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
# The sanitized module is loaded into a Python that is not: the ASan runtime must come first, and
# Python's own allocator and exit-time leaks are not ours to report.
if [ "${ALOOP_SANITIZERS:-no}" = yes ]; then
  asan=$(${ALOOP_CC:-gcc} -print-file-name=libasan.so)
  LD_PRELOAD="$asan${LD_PRELOAD:+ $LD_PRELOAD}"
  PYTHONMALLOC=malloc
  ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export LD_PRELOAD PYTHONMALLOC ASAN_OPTIONS
fi
cd "$top_srcdir/tests/python"
exec "$python" -m pytest -q -p no:cacheprovider .
