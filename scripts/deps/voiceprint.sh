#!/usr/bin/env bash
# Speaker encoder for voiceprints (crates/voiceprint), from a registry package.
# Idempotent: skipped when the converted model is already present.
#   PyPI resemblyzer 0.1.4 (Apache-2.0): bundles pretrained.pt (17 MB), a
#   3-layer LSTM over 40 mel bands -> 256-d speaker embedding (GE2E), in the
#   legacy non-zip PyTorch format. resemblyzer_convert.py reads that format
#   with plain pickle (no torch) and writes the encoder's tensors as
#   safetensors, which candle loads.
# Installed into $WAIHU_MODELS_DIR (default: $WAIHU_DATA_DIR/models, else
# $XDG_DATA_HOME/waihu/models or ~/.local/share/waihu/models) as
#   resemblyzer/{encoder.safetensors,LICENSE}
set -euo pipefail
data="${WAIHU_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/waihu}"
models="${WAIHU_MODELS_DIR:-$data/models}"
dest="$models/resemblyzer"
if [ -s "$dest/encoder.safetensors" ]; then
  exit 0
fi
command -v python3 >/dev/null || { echo "voiceprint.sh: python3 is needed to fetch the speaker encoder" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "voiceprint: fetching the speaker encoder (PyPI resemblyzer 0.1.4) into $dest"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  -d "$tmp" "resemblyzer==0.1.4"
python3 - "$tmp" <<'PY'
import sys, zipfile, glob
for whl in glob.glob(sys.argv[1] + "/*.whl"):
    zipfile.ZipFile(whl).extractall(sys.argv[1] + "/x")
PY
mkdir -p "$dest"
python3 "$here/resemblyzer_convert.py" "$tmp/x/resemblyzer/pretrained.pt" "$dest/encoder.safetensors.tmp"
cp "$tmp"/x/Resemblyzer-0.1.4.dist-info/LICENSE "$dest/LICENSE"
mv "$dest/encoder.safetensors.tmp" "$dest/encoder.safetensors"
