#!/usr/bin/env bash
# The main job on embedded defaults: installs what waihu needs (idempotent),
# builds it, and runs `waihu demo` (sample customers → segments → report).
# Extra arguments go to `waihu demo`; the data directory is $WAIHU_DATA_DIR
# (default ~/.local/share/waihu).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "demo: building waihu (the first build takes several minutes)" >&2
cargo build --release -p waihu
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/waihu" demo "$@"
