#!/bin/sh
# Python side of `waihu bench nlu`: the scikit-learn TF-IDF + LogisticRegression
# baseline (bench/nlu_baseline.py) and jieba for its Chinese tokens. Idempotent.
set -e
PY=${PYTHON:-python3}
if "$PY" -c 'import sklearn, jieba' 2>/dev/null; then
    exit 0
fi
"$PY" -m pip install --quiet --disable-pip-version-check scikit-learn jieba
