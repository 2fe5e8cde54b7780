#!/bin/sh
# `make check`'s comparison of aloop-charfinder with the original algorithm on this machine's
# Python (charfinder_original.py says how). SKIP (77) with the reason where python3 is missing.
set -u
srcdir=${top_srcdir:?top_srcdir is not set (make check sets it)}/tests/reference
builddir=${top_builddir:?top_builddir is not set (make check sets it)}
python=$(command -v python3) || { echo "SKIP: no python3"; exit 77; }
index_dir=$(mktemp -d) || exit 1
trap 'rm -rf "$index_dir"' EXIT
ALOOP_CHARFINDER_INDEX=$index_dir/charfinder.index \
  "$python" "$srcdir/charfinder_original.py" "$builddir/apps/aloop-charfinder"
