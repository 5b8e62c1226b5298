#!/usr/bin/env python3
"""scikit-learn baseline for `waihu bench nlu`: TF-IDF (jieba words + bigrams, character
1-3 grams) + LogisticRegression, trained and tested on exactly the files waihu uses.

Usage: nlu_baseline.py --train A.tsv [B.tsv ...] --test C.tsv [D.tsv ...]
Prints one JSON object: accuracy, macro_f1, per-test-file accuracy, training time,
per-utterance latency (one predict call per utterance, p50/p99) and batch throughput.
"""
import argparse
import json
import time

import jieba
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import FeatureUnion, make_pipeline

jieba.setLogLevel(60)


def read(paths):
    rows = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.strip() and not line.startswith("#") and "\t" in line:
                    label, text = line.split("\t", 1)
                    rows.append((label.strip(), text, p))
    return rows


def words(text):
    toks = [t for t in jieba.lcut(text.lower().replace("'", "")) if t.strip()]
    return toks + [a + " " + b for a, b in zip(toks, toks[1:])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", nargs="+", required=True)
    ap.add_argument("--test", nargs="+", required=True)
    a = ap.parse_args()
    train, test = read(a.train), read(a.test)
    jieba.initialize()
    t0 = time.perf_counter()
    model = make_pipeline(
        FeatureUnion([
            ("words", TfidfVectorizer(analyzer=words, sublinear_tf=True)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)),
        ]),
        LogisticRegression(C=10.0, max_iter=3000),
    )
    model.fit([t for _, t, _ in train], [l for l, _, _ in train])
    train_s = time.perf_counter() - t0
    texts = [t for _, t, _ in test]
    gold = [l for l, _, _ in test]
    t0 = time.perf_counter()
    pred = list(model.predict(texts))
    batch_s = time.perf_counter() - t0
    lat = []
    for t in texts:
        s = time.perf_counter()
        model.predict([t])
        lat.append(time.perf_counter() - s)
    lat.sort()
    per_file = {}
    for p in a.test:
        idx = [i for i, r in enumerate(test) if r[2] == p]
        per_file[p] = accuracy_score([gold[i] for i in idx], [pred[i] for i in idx]) if idx else 0.0
    print(json.dumps({
        "n": len(test),
        "accuracy": accuracy_score(gold, pred),
        "macro_f1": f1_score(gold, pred, average="macro"),
        "per_file_accuracy": per_file,
        "train_seconds": train_s,
        "latency_p50_us": lat[len(lat) // 2] * 1e6,
        "latency_p99_us": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6,
        "throughput_per_s": len(texts) / batch_s if batch_s > 0 else 0.0,
    }))


if __name__ == "__main__":
    main()
