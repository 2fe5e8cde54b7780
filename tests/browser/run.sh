#!/bin/sh
# `make check`'s browser test: the charfinder web page in headless Chromium (charfinder.mjs says
# what it checks). Exits 77, automake's SKIP, with the reason when Chromium, Node.js or
# playwright-core is missing (scripts/setup installs all three); with ALOOP_REQUIRE_BROWSER=1 a
# missing piece is a failure instead, so that CI cannot pass without having run it.
# Env: top_srcdir and top_builddir (absolute; `make check` exports them), CHROMIUM (the browser,
# default /usr/bin/chromium), ALOOP_BACKEND (the server's driver).
set -u
srcdir=${top_srcdir:?top_srcdir is not set (make check sets it)}/tests/browser
builddir=${top_builddir:?top_builddir is not set (make check sets it)}
chromium=${CHROMIUM:-/usr/bin/chromium}

missing() {
  if [ "${ALOOP_REQUIRE_BROWSER:-0}" = 1 ]; then
    echo "FAIL: $1 (ALOOP_REQUIRE_BROWSER=1)" >&2
    exit 1
  fi
  echo "SKIP: $1" >&2
  exit 77
}

[ -x "$chromium" ] || missing "no Chromium at $chromium (Debian: apt-get install chromium)"
command -v node >/dev/null 2>&1 || missing "no node (Debian: apt-get install nodejs npm)"
[ -f "$srcdir/node_modules/playwright-core/package.json" ] ||
  missing "no playwright-core in $srcdir/node_modules (run scripts/setup, or npm ci --prefix $srcdir)"

CHROMIUM=$chromium exec node "$srcdir/charfinder.mjs" "$builddir/apps/aloop-charfinder"
