#!/usr/bin/env bash
# The main job on embedded defaults: installs what waihu needs (idempotent),
# builds it, and runs `waihu demo` (sample customers → segments → report).
# Extra arguments go to `waihu demo`; the data directory is $WAIHU_DATA_DIR
# (default ~/.local/share/waihu). WAIHU_BIN=<path> runs that binary instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -n "${WAIHU_BIN:-}" ]; then
  # A waihu binary built already (CI passes the one its test build made: building `-p waihu`
  # alone unifies features differently and would compile much of the tree again).
  bin="$WAIHU_BIN"
else
  echo "demo: building waihu (the first build takes several minutes)" >&2
  cargo build --release -p waihu
  bin="${CARGO_TARGET_DIR:-target}/release/waihu"
fi
exec "$bin" demo "$@"
