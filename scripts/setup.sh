#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (root, or sudo available).
# Installs the Debian packages every part of waihu needs (each area lists its
# own in scripts/deps/*.apt) and runs each area's extra install hook
# (scripts/deps/*.sh: Python venvs, models from registry packages).
# Safe to run again: it only installs what is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

want=()
for f in "$here"/deps/*.apt; do
  [ -e "$f" ] || continue
  while read -r pkg _; do
    case "$pkg" in ''|'#'*) continue ;; esac
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || want+=("$pkg")
  done <"$f"
done
if [ ${#want[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${want[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi

for hook in "$here"/deps/*.sh; do
  [ -e "$hook" ] || continue
  bash "$hook"
done
