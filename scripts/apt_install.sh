#!/usr/bin/env bash
# Install Debian packages when we may (root with apt-get); exit non-zero when we cannot.
#
#   scripts/apt_install.sh PACKAGE...
#   scripts/apt_install.sh --project   every Debian package the project uses (PROJECT_PACKAGES)
#
# The project's Debian packages: PostgreSQL (scripts/pg.sh), Redis for shared rate-limit
# counters (scripts/redis.sh), Chromium and its fonts for the browser tests. Each script
# installs its own on first use; --project installs them all at once (a new machine, CI).
# Tries the install from the current package lists first and refreshes them only if that
# fails, so a machine that already has fresh lists does not pay for `apt-get update`.
set -uo pipefail
PROJECT_PACKAGES=(postgresql redis-server chromium fonts-liberation)
[ "$#" -gt 0 ] || { echo "usage: $0 PACKAGE... | --project" >&2; exit 2; }
if [ "$1" = "--project" ]; then set -- "${PROJECT_PACKAGES[@]}"; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "apt_install: not root, cannot install: $*" >&2
  exit 1
fi
command -v apt-get >/dev/null 2>&1 || { echo "apt_install: no apt-get on this machine" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -qq --no-install-recommends "$@" >/tmp/apt_install.$$.log 2>&1; }
echo "apt_install: installing $* (Debian packages)" >&2
if install "$@" || { apt-get update -qq >/dev/null 2>&1 && install "$@"; }; then
  rm -f /tmp/apt_install.$$.log
  exit 0
fi
echo "apt_install: apt-get install $* failed:" >&2
tail -n 20 /tmp/apt_install.$$.log >&2
rm -f /tmp/apt_install.$$.log
exit 1
