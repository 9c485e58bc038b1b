#!/usr/bin/env bash
# What the browser tests need beyond the venv: Debian's chromium (Playwright drives it through
# executable_path; it cannot download a browser build of its own) and Segment's analytics.js at
# the version pinned in tests/browser/package-lock.json. Each step is skipped when already done.
# Nothing here fails `make test`: without chromium or npm the browser tests skip and say why
# (and fail under CI=true, like a missing Redis).
set -uo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    install=(apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends chromium)
    echo "chromium missing: installing Debian's package (the browser tests drive it)" >&2
    # A fresh machine's package lists may be empty or stale: update once, then install.
    DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null 2>&1 \
      || { apt-get -o DPkg::Lock::Timeout=300 update -qq \
           && DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null; } \
      || echo "could not install chromium with apt-get: the browser tests will skip" >&2
  else
    echo "chromium missing and apt-get unusable (not root?): the browser tests will skip" >&2
  fi
fi

browser=tests/browser
if [ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
  if command -v npm >/dev/null 2>&1; then
    (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error) \
      || echo "npm ci failed in $browser: the browser tests will skip" >&2
  else
    echo "npm missing: analytics.js is not installed and the browser tests will skip" >&2
  fi
fi

if [ $((SECONDS - started)) -gt 1 ]; then
  echo "browser test set-up took $((SECONDS - started)) s" >&2
fi
exit 0
