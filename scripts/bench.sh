#!/usr/bin/env bash
# Runs jitgate-bench (release builds of the server and the bench) and keeps its report.
# Arguments go to jitgate-bench, e.g. scripts/bench.sh --scenario burst --burst-grants 200.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$HOME/.cache/jitgate/target}
out=${JITGATE_CACHE:-$HOME/.cache/jitgate}/bench
mkdir -p "$out"
report="$out/$(date -u +%Y%m%dT%H%M%SZ).md"
JITGATE_SERVER_BIN="$target/release/jitgate-server" "$target/release/jitgate-bench" "$@" | tee "$report"
echo "report saved to $report (docs/PERFORMANCE.md records the reference run)" >&2
