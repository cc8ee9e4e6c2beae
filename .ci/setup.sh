#!/bin/sh
# Install the system packages the integration tests drive (real peers, not mocks).
# Idempotent and quiet: does nothing when everything is present, prints only on failure.
set -eu

# golang-go, rpm and db5.3-util let the Go and rpm analyzers be checked against real toolchains.
PKGS="debootstrap docker-registry skopeo umoci postgresql apache2-utils golang-go rpm db5.3-util bpftrace"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup.sh: need root to install:$missing" >&2; exit 1; }
    SUDO="sudo"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086  # word splitting of the package list is intended
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $missing; } >"$log" 2>&1; then
    echo "setup.sh: installing$missing failed:" >&2
    tail -n 30 "$log" >&2
    exit 1
fi
