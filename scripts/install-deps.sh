#!/usr/bin/env bash
# Installs what jitgate's tests, demo and benchmark need, pinned, and does nothing
# (quietly) when it is all there already. Run as root for the apt part (CI is).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${JITGATE_CACHE:-$HOME/.cache/jitgate}
VENV=${JITGATE_VENV:-$CACHE/venv}
mkdir -p "$CACHE"

need_apt=()
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need_apt+=(postgresql)
command -v runuser >/dev/null || need_apt+=(util-linux)
# The OIDC peer (tests/peers/oidc) runs on Node.js with npm; the machine image has them,
# Debian's packages are the fallback.
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
# The browser tests drive Debian's Chromium through its ChromeDriver.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ "${WITH_BENCH_TOOLS:-0}" = 1 ]; then
  command -v wrk >/dev/null || need_apt+=(wrk)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: need root to apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
  echo "install-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian starts a cluster on install; tests run their own, so stop it.
  if command -v pg_ctlcluster >/dev/null; then
    for c in /etc/postgresql/*/main; do
      [ -d "$c" ] && pg_ctlcluster "$(basename "$(dirname "$c")")" main stop 2>/dev/null || true
    done
  fi
fi

# A venv at $1 with the pinned requirements $2, made again when they change.
venv_for() {
  local dir=$1 req=$2 what=$3
  local stamp
  stamp="$dir/.installed-$(sha256sum "$req" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "install-deps: creating the $what venv in $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    touch "$stamp"
  fi
}

# The AWS peer: moto plus our extensions.
venv_for "$VENV" tests/peers/requirements.txt "AWS peer"
# The API fuzzer (schemathesis), in a venv of its own: its pins and moto's differ.
venv_for "${JITGATE_FUZZ_VENV:-$CACHE/fuzz-venv}" tests/fuzz/requirements.txt "API fuzzer"

# The OIDC peer's node packages, pinned by its lockfile, into the cache.
scripts/install-oidc-peer.sh
