#!/usr/bin/env bash
# The main job: build everything and run the namespace testbed demo (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release --workspace --locked
out="${1:-out/demo}"
./target/release/testbed demo --out "$out"
echo "demo: results in $out/report.json"
