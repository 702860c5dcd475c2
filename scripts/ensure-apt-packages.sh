#!/usr/bin/env bash
# ensure-apt-packages.sh [COMMAND:]PACKAGE ...
#
# Makes sure each Debian PACKAGE whose COMMAND (default: the package name) is not on PATH
# gets installed: `make check` (target system-packages) and .ci/run both call this, so a
# laptop and CI get the same tools the same way.
#
#   scripts/ensure-apt-packages.sh promtool:prometheus wrk dockerd:docker.io
#
# - Nothing missing: says nothing, exit 0.
# - Missing, and root or passwordless sudo is available: `apt-get update` (once) and
#   `apt-get install --no-install-recommends` of what is missing. Installing never starts
#   a service (a temporary policy-rc.d refuses it): prometheus, redis-server and docker.io
#   would otherwise start daemons on this host; the checks start their own.
# - Missing, and no way to install (no root, no passwordless sudo, no apt-get, or
#   APT_INSTALL=no): prints the exact command to run and exits 1.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
SBIN_PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

missing=()
for spec in "$@"; do
    pkg="${spec#*:}"
    cmd="${spec%%:*}"
    if ! PATH="$SBIN_PATH" command -v "$cmd" >/dev/null 2>&1; then
        case " ${missing[*]-} " in
        *" $pkg "*) ;;
        *) missing+=("$pkg") ;;
        esac
    fi
done
if ((${#missing[@]} == 0)); then
    exit 0
fi

ask() {
    {
        echo "error: the checks need these Debian packages, which are not installed: ${missing[*]}"
        echo "       ($1)"
        echo "       install them, then run the command again:"
        echo "         sudo apt-get update && sudo apt-get install --no-install-recommends ${missing[*]}"
    } >&2
    exit 1
}

sudo=()
if [[ "${APT_INSTALL:-yes}" == no ]]; then
    ask "APT_INSTALL=no"
elif ! command -v apt-get >/dev/null 2>&1; then
    ask "no apt-get on this machine: install the equivalent packages of your system"
elif ((EUID != 0)); then
    if sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        ask "installing needs root or passwordless sudo"
    fi
fi

echo "--- installing Debian packages: ${missing[*]}"
policy=/usr/sbin/policy-rc.d
if [[ ! -e "$policy" ]]; then
    # exit 101 = "action forbidden": packages are unpacked and configured, services not started.
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 0755 "$policy"
    trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" </dev/null
