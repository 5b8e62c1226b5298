#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer) of every parser of outside input.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Builds fuzz/ (its own cargo workspace) with stable cargo and the
# sanitizer-coverage flags cargo-fuzz would pass (no nightly, no ASan: safe Rust
# panics are what we look for), then runs each target for SECONDS (default 60)
# from its seed corpus (fuzz/corpus/<target>/, read only) plus a working corpus
# kept beside the build (so long runs build on earlier ones). Prints, per target,
# executions, executions/s, corpus size and findings; exits non-zero when any
# target crashed, hung or ran out of memory (the input is saved under
# fuzz/artifacts/<target>/; replay it with the same binary and that file).
#
# 模糊测试：逐个解析器运行 libFuzzer，每个目标 SECONDS 秒（默认 60）；发现崩溃则以非零退出。
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

secs="${1:-60}"
shift || true
case "$secs" in '' | *[!0-9]*)
  echo "fuzz.sh: SECONDS must be a whole number, got '$secs' / 秒数须为整数" >&2
  exit 2
  ;;
esac

# The instrumented build never shares the main target dir (other RUSTFLAGS would
# rebuild everything there); it sits beside it so CI's cache keeps it too.
export CARGO_TARGET_DIR="${WAIHU_FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/waihu-target}-fuzz}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! command -v g++ >/dev/null && ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: libFuzzer needs a C++ compiler; run scripts/setup.sh (installs g++) / 需要 C++ 编译器，请先运行 scripts/setup.sh" >&2
  exit 2
fi

host=$(rustc -vV | sed -n 's/^host: //p')
# What `cargo fuzz build -s none` passes, on stable: coverage counters, the PC
# table and comparison tracing for libFuzzer; debug assertions and overflow
# checks so arithmetic bugs panic. Only the target triple's crates get them
# (--target keeps build scripts and proc macros uninstrumented).
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in fuzz/fuzz_targets/*.rs; do
    t=$(basename "$f" .rs)
    targets+=("$t")
  done
fi

echo "== fuzz: building ${#targets[@]} targets (target dir $CARGO_TARGET_DIR)"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
cargo build --release --manifest-path fuzz/Cargo.toml --target "$host" "${bins[@]}"
bindir="$CARGO_TARGET_DIR/$host/release"

failed=()
rows=()
for t in "${targets[@]}"; do
  seeds="$root/fuzz/corpus/$t"
  work="$CARGO_TARGET_DIR/fuzz-corpus/$t"
  art="$root/fuzz/artifacts/$t"
  log="$CARGO_TARGET_DIR/fuzz-logs/$t.log"
  mkdir -p "$work" "$art" "$(dirname "$log")"
  [ -d "$seeds" ] || { echo "fuzz.sh: no seed corpus $seeds / 缺少种子语料" >&2; exit 2; }
  echo "== fuzz: $t for ${secs}s"
  rc=0
  # The outer timeout only guards against libFuzzer itself not stopping.
  timeout --signal=KILL $((secs + 120)) "$bindir/$t" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$art/" "$work" "$seeds" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # A crashed run prints no final stats: its last status line has the count.
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 | sed 's/corp: //')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //')
  if [ "$rc" -eq 0 ]; then
    finding="none"
  else
    # A panic names its place and message (the line after); else libFuzzer's verdict
    # (timeout, out-of-memory, deadly signal).
    finding=$(grep -m1 -A1 "panicked at" "$log" | tr '\n' ' ' | sed -e "s/^thread .* panicked at/panic at/" -e 's/ *$//')
    [ -n "$finding" ] || finding=$(grep -m1 -o "ERROR: libFuzzer: .*" "$log" || echo "exit $rc")
    failed+=("$t")
    echo "-- $t: FINDING: $finding (log: $log)"
    ls -1 "$art" | sed "s|^|   input saved: $art/|" || true
  fi
  rows+=("$(printf '%-14s %12s %10s %14s %8s  %s' "$t" "${execs:-?}" "${rate:-?}" "${corp:-?}" "${cov:-?}" "$finding")")
done

echo
echo "== fuzz summary (${secs}s per target) / 模糊测试汇总"
printf '%-14s %12s %10s %14s %8s  %s\n' target executions exec/s corpus coverage findings
for r in "${rows[@]}"; do echo "$r"; done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in ${failed[*]}; inputs under fuzz/artifacts/ / 发现崩溃，输入保存在 fuzz/artifacts/" >&2
  exit 1
fi
echo "fuzz: no findings / 未发现问题"
