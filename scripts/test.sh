#!/usr/bin/env bash
# The whole test suite: unit, property, fixture (scapy), tshark and namespace tests.
# Namespace tests need root; without root they skip loudly, with CI=true they fail.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# QEMU, busybox-static and Debian's stock kernel (cached) for the `vm` host tests.
bash scripts/vm-deps.sh >/dev/null
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-2}"
