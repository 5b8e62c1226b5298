#!/usr/bin/env bash
# 号段归属地: Chinese number segment -> province/city table for crates/geo, from
# a registry package. Idempotent: skipped when the table from that version is
# already present.
#   PyPI phone (ls0f/lovedboy, MIT; "手机号码库"): phone.dat, 7-digit mobile
#   segments (13x-19x) -> province|city|zip|area code + carrier, ~500k segments.
#   Pinned to 0.4.5 (data of 2023-12). To update to the newest release on PyPI:
#     WAIHU_GEO_PHONE=latest bash scripts/deps/geo.sh
#   (or any version: WAIHU_GEO_PHONE=0.4.6). The old table stays until the new
#   one is converted.
# geo_convert.py turns phone.dat into the text table (runs of segments, places
# with their area codes) installed as $WAIHU_MODELS_DIR/geo/cn-phone.tsv
# (default: $WAIHU_DATA_DIR/models, else $XDG_DATA_HOME/waihu/models or
# ~/.local/share/waihu/models). `waihu geo info` shows what is installed.
set -euo pipefail
data="${WAIHU_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/waihu}"
models="${WAIHU_MODELS_DIR:-$data/models}"
dest="$models/geo"
want="${WAIHU_GEO_PHONE:-0.4.5}"
if [ "$want" != latest ] && [ -s "$dest/cn-phone.tsv" ] && grep -q "^V	PyPI phone $want " "$dest/cn-phone.tsv"; then
  exit 0
fi
command -v python3 >/dev/null || { echo "geo.sh: python3 is needed to fetch the phone package" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
spec="phone==$want"
[ "$want" = latest ] && spec="phone"
# The package is published as an sdist only; pip reads its metadata, nothing is installed.
python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" "$spec"
sdist=$(ls "$tmp"/phone-*.tar.gz | head -n1)
version=$(basename "$sdist" .tar.gz); version=${version#phone-}
if [ -s "$dest/cn-phone.tsv" ] && grep -q "^V	PyPI phone $version " "$dest/cn-phone.tsv"; then
  echo "geo: PyPI phone $version is already installed in $dest"
  exit 0
fi
tar -xzf "$sdist" -C "$tmp"
mkdir -p "$dest"
echo "geo: converting PyPI phone $version into $dest/cn-phone.tsv"
python3 "$here/geo_convert.py" "$tmp/phone-$version/phone/phone.dat" "$dest/cn-phone.tsv.tmp" "PyPI phone $version"
mv "$dest/cn-phone.tsv.tmp" "$dest/cn-phone.tsv"
