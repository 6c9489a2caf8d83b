#!/bin/sh
# Rebuilds tunnel.bpf.o from tunnel.bpf.c (Debian: apt-get install clang).
set -eu
cd "$(dirname "$0")"
CLANG=${CLANG:-$(command -v clang || command -v clang-14)}
"$CLANG" -O2 -Wall -target bpf -I/usr/include/x86_64-linux-gnu -c tunnel.bpf.c -o tunnel.bpf.o
