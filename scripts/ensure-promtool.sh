#!/usr/bin/env bash
# promtool, for the alert-rule tests (`promtool check rules`, `promtool test rules`): the one on
# PATH, else the binary out of Debian's `prometheus` package, unpacked into .venv/bin without
# installing the package (so no Prometheus server is set up or started). Skipped when already
# there. Nothing here fails `make test`: without promtool those tests skip and say why (and
# fail under CI=true).
set -uo pipefail
cd "$(dirname "$0")/.."
target=.venv/bin/promtool
command -v promtool >/dev/null 2>&1 && exit 0
[ -x "$target" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  echo "promtool missing and apt-get unusable: the alert-rule tests will skip" >&2
  exit 0
fi
started=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "promtool missing: unpacking it from Debian's prometheus package into $target" >&2
# A fresh machine's package lists may be empty or stale: update once, then download.
(cd "$work" && { apt-get download -qq prometheus >/dev/null 2>&1 \
    || { apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null 2>&1 \
         && apt-get download -qq prometheus >/dev/null 2>&1; }; }) \
  && dpkg-deb -x "$work"/prometheus_*.deb "$work/root" \
  && install -m 0755 "$work/root/usr/bin/promtool" "$target" \
  || echo "could not get promtool from apt: the alert-rule tests will skip" >&2
if [ $((SECONDS - started)) -gt 1 ]; then
  echo "promtool set-up took $((SECONDS - started)) s" >&2
fi
exit 0
