#!/bin/sh
# schemathesis (PyPI), for crates/server/tests/schemathesis.rs: generated requests
# against the served OpenAPI document, checking for 5xx and schema violations.
# Its own venv under the cache, pinned; idempotent.
set -e
PY=${PYTHON:-python3}
want=4.32.5
venv="${XDG_CACHE_HOME:-$HOME/.cache}/waihu/schemathesis"
if [ -x "$venv/bin/schemathesis" ] && "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$want"; then
    exit 0
fi
"$PY" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$want"
