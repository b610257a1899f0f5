#!/usr/bin/env bash
# Installs the OIDC peer's node packages (tests/peers/oidc: oidc-provider, jose), pinned by
# its package-lock.json, into the cache, never into the clone. Does nothing (quietly) when
# the installed tree matches the lockfile. Prints the node_modules path with --print-path.
#
# Start the peer afterwards with:
#   NODE_PATH="${JITGATE_CACHE:-$HOME/.cache/jitgate}/oidc-peer/node_modules" \
#     node tests/peers/oidc/provider.mjs --port 0
# (provider.mjs also finds the cache by itself, so NODE_PATH is optional.)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${JITGATE_CACHE:-$HOME/.cache/jitgate}
DIR="$CACHE/oidc-peer"
SRC=tests/peers/oidc

command -v node >/dev/null || { echo "install-oidc-peer: node (>= 20.19) is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "install-oidc-peer: npm is required" >&2; exit 1; }

hash=$(cat "$SRC/package.json" "$SRC/package-lock.json" | sha256sum | cut -c1-16)
stamp="$DIR/.installed-$hash"
if [ ! -f "$stamp" ] || [ ! -d "$DIR/node_modules/oidc-provider" ]; then
  echo "install-oidc-peer: npm ci into $DIR" >&2
  mkdir -p "$DIR"
  rm -f "$DIR"/.installed-*
  cp "$SRC/package.json" "$SRC/package-lock.json" "$DIR/"
  (cd "$DIR" && npm ci --no-audit --no-fund --silent)
  touch "$stamp"
fi
if [ "${1:-}" = --print-path ]; then
  echo "$DIR/node_modules"
fi
