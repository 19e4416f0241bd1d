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
    nftables iptables libnetfilter-queue-dev
    python3 curl procps util-linux
    pdns-server pdns-backend-sqlite3 sqlite3 bind9-dnsutils redis-server libhiredis-dev libldns-dev
    postgresql-server-dev-15
)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps.sh: installing ${missing[*]}"
    apt-get update -qq
    # The lab and the tests start PowerDNS, Redis and PostgreSQL themselves, on their own ports:
    # keep the packages' system services from starting during the install (policy-rc.d, 101 =
    # action forbidden), unless the machine already has a policy of its own.
    own_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    if [ -n "$own_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
fi
