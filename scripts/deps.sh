#!/usr/bin/env bash
# Install the Debian packages the tests and the lab need, when missing.
# Idempotent; safe to call from every entry point.
set -euo pipefail
pkgs=(tshark python3-scapy iperf3 tcpdump iproute2 iputils-ping fonts-dejavu-core bird2)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: need root to apt-get install ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
