#!/usr/bin/env bash
# Installs everything the project needs to build, test and run its lab on Debian 12, as root.
# Idempotent. Called by scripts/demo.sh and scripts/test.sh (and so by .ci/run).
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: run as root (it installs Debian packages)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
pkgs=(
    build-essential meson ninja-build pkgconf clang-format
    libraft-dev libuv1-dev libmsgpack-dev libyaml-dev libmicrohttpd-dev
    libcurl4-openssl-dev libjansson-dev libssl-dev libpq-dev postgresql-15
    python3 curl procps util-linux
)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps.sh: installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
