#!/usr/bin/env bash
# `make demo`: starts the AWS peer (moto, seeded), the OpenID provider peer
# (tests/peers/oidc) and jitgate-server (SQLite) on this machine, prints the URL and a
# walk-through for a browser, and leaves everything running until Ctrl-C. Whatever ends
# the script (Ctrl-C, an error, the walk-through finishing without a terminal) stops
# everything it started.
#
# Without a terminal on stdin, or with JITGATE_DEMO_EXIT=1, it runs the scripted
# walk-through (tests/demo/main.rs: web sign-in, then the grant's life through the broker)
# and exits (CI, tests). JITGATE_DEMO_SCRIPTED=1 runs that walk-through at a terminal too,
# before handing over. Expects the binaries built (the Makefile target does that).
# shellcheck disable=SC2317 # the functions it thinks unreachable run from traps and wait_for
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${JITGATE_CACHE:-$HOME/.cache/jitgate}
VENV=${JITGATE_VENV:-$CACHE/venv}
TARGET=${CARGO_TARGET_DIR:-$CACHE/target}
SERVER_BIN=$TARGET/debug/jitgate-server
DEMO_BIN=$TARGET/debug/jitgate-demo
DIR=$CACHE/demo
CONFIG=$DIR/jitgate.toml
DB=$DIR/jitgate.db
SERVER_LOG=$DIR/server.log
PEER_LOG=$DIR/peer.log
OIDC_LOG=$DIR/oidc.log

say() { printf '%s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

peer_pid=
oidc_pid=
server_pid=
demo_pid=

# Stops one process we started: TERM, then KILL if it has not exited in $2 seconds.
# jitgate-server finishes work in progress on TERM (up to 30s), so it gets longer.
stop() {
  local pid=$1 grace=$2 name=$3 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "demo: $name did not stop within ${grace}s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  # Finish stopping even if Ctrl-C is pressed again; it takes seconds at most.
  trap '' INT TERM
  trap - EXIT
  if [ -n "$server_pid$peer_pid$oidc_pid" ]; then
    say ""
    say "demo: stopping the server and the peers"
  fi
  stop "$demo_pid" 5 jitgate-demo
  # The server first: it may still be talking to the peer.
  stop "$server_pid" 40 jitgate-server
  stop "$oidc_pid" 10 "the OIDC peer"
  stop "$peer_pid" 10 "the AWS peer"
  exit "$status"
}
trap cleanup EXIT
# Ctrl-C and TERM end the script normally (130/143); the EXIT trap does the stopping.
trap 'exit 130' INT
trap 'exit 143' TERM

[ -x "$SERVER_BIN" ] || die "$SERVER_BIN is missing; run \`make demo\` (it builds it)"
[ -x "$DEMO_BIN" ] || die "$DEMO_BIN is missing; run \`make demo\` (it builds it)"
[ -x "$VENV/bin/python" ] || die "no AWS peer venv at $VENV; run \`make deps\`"
command -v node >/dev/null || die "node is missing (the OIDC peer runs on it); run \`make deps\`"
# Idempotent and silent once the pinned packages are in the cache.
scripts/install-oidc-peer.sh

mkdir -p "$DIR"
# A fresh database each time, so a second `make demo` starts from nothing (the WAL
# files belong to the old database and must go with it).
rm -f "$DB" "$DB-wal" "$DB-shm"

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local seconds=$1 i
  shift
  for ((i = 0; i < seconds * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

# --- 0. the server's port (the OIDC peer needs the redirect URI up front) -------
# 8080 unless something holds it; SO_REUSEADDR as the server's listener uses, so a
# port left in TIME_WAIT by the previous demo counts as free.
port_free() {
  "$VENV/bin/python" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}
PORT=
for candidate in $(seq 8080 8180); do
  if port_free "$candidate"; then PORT=$candidate; break; fi
done
[ -n "$PORT" ] || die "no free port in 8080-8180 for the server"
URL=http://127.0.0.1:$PORT

# --- 1. the AWS peer --------------------------------------------------------------
say "demo: starting the AWS peer (moto with IAM Identity Center extensions)"
"$VENV/bin/python" tests/peers/aws_peer.py --port 0 --assignment-delay-ms 1500 \
  </dev/null >"$PEER_LOG" 2>&1 &
peer_pid=$!
peer_ready() {
  kill -0 "$peer_pid" 2>/dev/null || { cat "$PEER_LOG" >&2; die "the AWS peer exited"; }
  grep -q '^READY ' "$PEER_LOG"
}
wait_for 30 peer_ready || { cat "$PEER_LOG" >&2; die "the AWS peer was not ready after 30s"; }
PEER=$(sed -n 's/^READY //p' "$PEER_LOG" | head -n 1)

seed=$(curl -fsS -X POST "$PEER/_peer/seed" -H 'content-type: application/json' -d '{
  "users": [
    {"user_name": "alice", "email": "alice@example.com", "display_name": "Alice Liddell"},
    {"user_name": "bob", "email": "bob@example.com", "display_name": "Bob Builder"},
    {"user_name": "carol", "email": "carol@example.com", "display_name": "Carol Danvers"},
    {"user_name": "dave", "email": "dave@example.com", "display_name": "Dave Lister"}
  ],
  "permission_sets": [{"name": "JitSsm"}, {"name": "JitSsm-deploy"}, {"name": "JitSsm-readonly"}],
  "accounts": ["111111111111", "222222222222"],
  "instances": [
    {"name": "web-1", "account": "111111111111"},
    {"name": "web-2", "account": "111111111111"},
    {"name": "db-1", "account": "111111111111", "instance_type": "t3.small"}
  ]
}') || die "seeding the AWS peer at $PEER failed (log: $PEER_LOG)"
seed_field() {
  printf '%s' "$seed" | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
INSTANCE_ARN=$(seed_field instance_arn)
IDENTITY_STORE_ID=$(seed_field identity_store_id)
INSTANCES=$(printf '%s' "$seed" | "$VENV/bin/python" -c '
import json, sys
for name, i in sorted(json.load(sys.stdin)["instances"].items()):
    print("              %-6s %s  %-15s account %s" % (name, i["instance_id"], i["private_ip"], i["account"]))')

# --- 2. the OpenID provider peer ---------------------------------------------------
say "demo: starting the OpenID provider peer (oidc-provider)"
node tests/peers/oidc/provider.mjs --port 0 --redirect-uri "$URL/auth/callback" \
  --post-logout-redirect-uri "$URL/" </dev/null >"$OIDC_LOG" 2>&1 &
oidc_pid=$!
oidc_ready() {
  kill -0 "$oidc_pid" 2>/dev/null || { cat "$OIDC_LOG" >&2; die "the OIDC peer exited"; }
  grep -q '^READY ' "$OIDC_LOG"
}
wait_for 30 oidc_ready || { cat "$OIDC_LOG" >&2; die "the OIDC peer was not ready after 30s"; }
ISSUER=$(sed -n 's/^READY //p' "$OIDC_LOG" | head -n 1)

# --- 3. the config --------------------------------------------------------------
AUDIT_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
cat >"$CONFIG" <<EOF
# Written by scripts/demo.sh for \`make demo\`; rewritten on every run.
# The commented reference is deploy/jitgate.example.toml.

[server]
listen = "127.0.0.1:$PORT"
public_url = "$URL"

[database]
url = "sqlite://$DB"

[aws]
region = "us-east-1"
# The AWS peer started by the demo (tests/peers/aws_peer.py).
endpoint_url = "$PEER"
instance_arn = "$INSTANCE_ARN"
identity_store_id = "$IDENTITY_STORE_ID"
run_as_attribute = "nickName"

[scheduler]
# Short, so the walk-through does not wait on them.
poll_interval = "500ms"
sweep = "*/10 * * * * *"

[auth]
admin_groups = ["jitgate-admins"]

[audit]
# Signs the audit chain. A deployment gives it through JITGATE_AUDIT_KEY instead, never
# in a file next to the database; the demo makes a new one on every run.
key = "$AUDIT_KEY"

[oidc]
# The OpenID provider peer started by the demo (tests/peers/oidc/provider.mjs): any
# password signs in alice (developers), bob (sre), carol (sre, jitgate-admins), dave.
issuer = "$ISSUER"
client_id = "jitgate"
client_secret = "jitgate-secret"

[[profiles]]
name = "prod-web"
description = "Shell on production web servers"
accounts = ["111111111111"]
permission_set = "JitSsm"
run_as_mode = "principal-tag"
allowed_os_users = ["app", "readonly"]
# The walk-through watches a 45 s grant expire; people would keep the 1m default or more.
min_duration = "30s"
max_duration = "4h"
requester_groups = ["developers"]
approver_groups = ["sre"]
approvals_required = 1
auto_approve = false
approval_timeout = "1h"

[[profiles]]
name = "staging"
description = "Staging, approved automatically"
accounts = ["222222222222"]
permission_set = "JitSsm-{os_user}"
run_as_mode = "session-document"
allowed_os_users = ["deploy", "readonly"]
min_duration = "30s"
max_duration = "8h"
# sre too: in the walk-through carol (sre) deploys to staging.
requester_groups = ["developers", "sre"]
approver_groups = ["sre"]
auto_approve = true
EOF

if ! check=$("$SERVER_BIN" check-config --config "$CONFIG" 2>&1 >/dev/null); then
  printf '%s\n' "$check" >&2
  die "the generated config $CONFIG is invalid (see above)"
fi

# --- 4. the server --------------------------------------------------------------
say "demo: starting jitgate-server on $URL"
# The peer ignores credentials, but the SDK wants some; no instance metadata lookups.
AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 \
  AWS_EC2_METADATA_DISABLED=true \
  "$SERVER_BIN" serve --config "$CONFIG" </dev/null >"$SERVER_LOG" 2>&1 &
server_pid=$!
server_ready() {
  kill -0 "$server_pid" 2>/dev/null || {
    tail -n 20 "$SERVER_LOG" >&2
    die "jitgate-server exited (log: $SERVER_LOG)"
  }
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/readyz")" = 200 ]
}
if ! wait_for 60 server_ready; then
  tail -n 20 "$SERVER_LOG" >&2
  die "jitgate-server was not ready after 60s (log: $SERVER_LOG)"
fi

# --- 5. the walk-through --------------------------------------------------------
interactive=1
if [ "${JITGATE_DEMO_EXIT:-0}" = 1 ] || [ ! -t 0 ]; then interactive=0; fi

cat <<EOF

jitgate is running at $URL
  AWS peer    $PEER   (EC2 instances:)
$INSTANCES
  OIDC peer   $ISSUER   (alice, bob, carol, dave; any password)
  config      $CONFIG   database $DB
  logs        $SERVER_LOG, $PEER_LOG, $OIDC_LOG
EOF

if [ "$interactive" = 0 ] || [ "${JITGATE_DEMO_SCRIPTED:-0}" = 1 ]; then
  say ""
  say "Scripted walk-through: people sign in on the web, then act through the broker library;"
  say "the server provisions, expires and revokes in the AWS peer."
  # In the background and waited for, so a signal to this script alone (not only a
  # terminal's Ctrl-C, which reaches the whole process group) stops the demo at once.
  "$DEMO_BIN" --config "$CONFIG" --peer "$PEER" --server "$URL" &
  demo_pid=$!
  if ! wait "$demo_pid"; then
    demo_pid=
    say "" >&2
    kill -0 "$server_pid" 2>/dev/null || say "demo: jitgate-server is no longer running" >&2
    say "demo: the walk-through failed; last lines of $SERVER_LOG:" >&2
    tail -n 20 "$SERVER_LOG" >&2
    exit 1
  fi
  demo_pid=
fi

cat <<EOF

Try it in a browser (any password):
  1. Open $URL and sign in as alice. New request: prod-web, account 111111111111,
     OS user app, 5 minutes, any reason. It waits for an approver (sre).
  2. In a private window, open $URL, sign in as bob; Approvals -> open it -> Approve.
  3. As alice, watch it turn active with the time left; the assignment is in the peer:
       curl -s $PEER/_peer/assignments
     It expires after 5 minutes (or Revoke it on its page) and the assignment goes away.
  4. Sign in as carol (admin): Admin -> Audit shows every step; export it as CSV.
Also: $URL/api/v1/openapi.json, and
  $SERVER_BIN audit verify --config $CONFIG
EOF

if [ "$interactive" = 0 ]; then
  exit 0
fi
say ""
say "Everything keeps running; press Ctrl-C to stop it."
# `wait` returns as soon as a trapped signal arrives, so Ctrl-C stops things at once;
# it also returns if the server dies, which should not go unnoticed.
wait "$server_pid" || true
server_pid=
die "jitgate-server stopped on its own; last lines of $SERVER_LOG:
$(tail -n 20 "$SERVER_LOG")"
