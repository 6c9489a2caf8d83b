#!/usr/bin/env bash
# What the testbed's `vm` hosts need: QEMU (TCG), busybox-static for the
# initramfs, and Debian's stock kernel (IPV6_MIP6=y, XFRM_SUB_POLICY=y) as
# a package extracted into a cache reused between runs.
# Prints the kernel's cache directory (holding boot/vmlinuz-* and lib/modules/*).
# Idempotent. Cache: $MIP6_VM_CACHE (default /var/cache/mip6-anycast).
set -euo pipefail
cache="${MIP6_VM_CACHE:-/var/cache/mip6-anycast}"
pkgs=(qemu-system-x86 busybox-static)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
updated=0
if [ "${#missing[@]}" -gt 0 ]; then
    echo "vm-deps: installing ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "vm-deps: need root to apt-get install ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    updated=1
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
mkdir -p "$cache"
# Reuse any kernel already extracted.
existing=$(ls -d "$cache"/linux-image-6.1.0-*-amd64-unsigned 2>/dev/null | sort -V | tail -n1 || true)
if [ -n "$existing" ] && ls "$existing"/boot/vmlinuz-* >/dev/null 2>&1; then
    echo "$existing"
    exit 0
fi
name=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -n1)
if [ -z "$name" ] && [ "$updated" -eq 0 ]; then
    apt-get update -qq
    name=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -n1)
fi
if [ -z "$name" ]; then
    echo "vm-deps: cannot tell the current Debian 6.1 kernel package" >&2
    exit 1
fi
pkg="${name}-unsigned"
dir="$cache/$pkg"
tmp=$(mktemp -d "$cache/.dl.XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "vm-deps: downloading $pkg" >&2
(cd "$tmp" && apt-get download -qq "$pkg" >/dev/null)
mkdir -p "$tmp/x"
dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x"
rm -rf "$dir"
mv "$tmp/x" "$dir"
echo "$dir"
