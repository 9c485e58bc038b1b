#!/usr/bin/env bash
# Install Debian packages some tests need, when missing: `ensure-debian-packages.sh faketime`.
# A package is checked with dpkg; missing ones are installed with apt-get (refreshing the
# package lists once if the first try fails). Nothing here fails `make test`: without the
# package the tests that need it skip and say why (and fail under CI=true).
set -uo pipefail
missing=()
for package in "$@"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing ${missing[*]} and apt-get unusable (not root?): the tests that need them skip" >&2
  exit 0
fi
echo "installing Debian packages the tests need: ${missing[*]}" >&2
install=(apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}")
DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null 2>&1 \
  || { apt-get -o DPkg::Lock::Timeout=300 update -qq \
       && DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null; } \
  || echo "could not install ${missing[*]}: the tests that need them skip" >&2
exit 0
