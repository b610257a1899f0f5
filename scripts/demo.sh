#!/usr/bin/env bash
# `make demo`: runs jitgate-demo (tests/demo), which stands up the AWS peer (moto,
# seeded), the OpenID provider peer, the Slack peer and jitgate-server on SQLite with the
# test kit the integration tests use (tests/kit), prints the URL and a walk-through for a
# browser, and keeps everything running until Ctrl-C. However it ends, nothing it started outlives it.
#
# Without a terminal on stdin, or with JITGATE_DEMO_EXIT=1, it runs the scripted
# walk-through (web sign-in, then the grant's life through the broker) and exits (CI,
# tests). JITGATE_DEMO_SCRIPTED=1 runs that walk-through at a terminal too, before
# handing over. Expects the binaries built (the Makefile target does that).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${JITGATE_CACHE:-$HOME/.cache/jitgate}
VENV=${JITGATE_VENV:-$CACHE/venv}
TARGET=${CARGO_TARGET_DIR:-$CACHE/target}
SERVER_BIN=$TARGET/debug/jitgate-server
DEMO_BIN=$TARGET/debug/jitgate-demo

die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ -x "$SERVER_BIN" ] || die "$SERVER_BIN is missing; run \`make demo\` (it builds it)"
[ -x "$DEMO_BIN" ] || die "$DEMO_BIN is missing; run \`make demo\` (it builds it)"
[ -x "$VENV/bin/python" ] || die "no AWS peer venv at $VENV; run \`make deps\`"
command -v node >/dev/null || die "node is missing (the OIDC peer runs on it); run \`make deps\`"
# Idempotent and silent once the pinned packages are in the cache.
scripts/install-oidc-peer.sh

exec "$DEMO_BIN"
