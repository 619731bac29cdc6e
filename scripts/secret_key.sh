#!/usr/bin/env bash
# Print this checkout's SECRET_KEY, generating a random one on first use.
#
# The key lives in instance/secret_key (mode 600, never committed: instance/ is ignored),
# so sessions survive restarts of `make run` / `make serve` without anyone having to set
# SECRET_KEY by hand, and the app's insecure development default is never used.
# An explicit SECRET_KEY in the environment always wins (the Makefile checks that first).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${MARKETPLACE_INSTANCE:-instance}"
file="$dir/secret_key"
mkdir -p "$dir"
if [ ! -s "$file" ]; then
  # umask first: the file must never exist, even briefly, with wider permissions.
  ( umask 077
    tmp="$(mktemp "$dir/.secret_key.XXXXXX")"
    python3 -c 'import secrets; print(secrets.token_urlsafe(48))' >"$tmp"
    # -n: if another process won the race, keep its key so every caller prints the same one.
    mv -n "$tmp" "$file"; rm -f "$tmp" )
fi
chmod 600 "$file"
cat "$file"
