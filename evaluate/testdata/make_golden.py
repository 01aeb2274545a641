#!/usr/bin/python3
"""Golden figures for the evaluate package, made with scikit-learn.

Reads predictions.csv (key,label,probability,group: fixed data with ties,
within and across classes, and probabilities on the bin edges and the
threshold) and writes golden.json. The Go tests compare against the JSON, so
they need no Python. Regenerate with Debian's scikit-learn:

    apt-get install -y python3-sklearn
    /usr/bin/python3 evaluate/testdata/make_golden.py

ECE and the reliability table are not in scikit-learn; they are computed
here with numpy on calibration_curve's bins (np.linspace(0, 1, 11) and
np.searchsorted, side left: [0, 0.1], (0.1, 0.2], ..., (0.9, 1], so a
probability on an edge goes to the lower bin), and the table is checked
against calibration_curve itself.
"""

import csv
import json
import os
import sys

import numpy as np
import sklearn
from sklearn.calibration import calibration_curve
from sklearn.metrics import (accuracy_score, average_precision_score,
                             brier_score_loss, confusion_matrix, f1_score,
                             precision_recall_curve, precision_score,
                             recall_score, roc_auc_score, roc_curve)

HERE = os.path.dirname(os.path.abspath(__file__))
THRESHOLDS = [0.5, 0.35]
TARGETS = [0.80, 0.90, 0.95]
BINS = 10


def load():
    with open(os.path.join(HERE, "predictions.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    y = np.array([int(r["label"]) for r in rows])
    p = np.array([float(r["probability"]) for r in rows])
    g = np.array([r["group"] for r in rows])
    return y, p, g


def at_threshold(y, p, t):
    pred = (p >= t).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "threshold": t,
        "tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn),
        "accuracy": accuracy_score(y, pred),
        "sensitivity": recall_score(y, pred, pos_label=1),
        "specificity": recall_score(y, pred, pos_label=0),
        "ppv": precision_score(y, pred, pos_label=1),
        "npv": precision_score(y, pred, pos_label=0),
        "f1": f1_score(y, pred),
    }


def operating_points(y, p):
    # drop_intermediate=False keeps every distinct probability as a cut.
    fpr, tpr, thr = roc_curve(y, p, drop_intermediate=False)
    out = []
    for target in TARGETS:
        i = int(np.argmax(tpr >= target))  # thresholds descend: first is highest
        out.append({"target_sensitivity": target, "threshold": float(thr[i]),
                    "sensitivity": float(tpr[i]), "specificity": float(1 - fpr[i])})
    return out


def calibration(y, p):
    edges = np.linspace(0, 1, BINS + 1)
    idx = np.searchsorted(edges[1:-1], p, side="left")  # as calibration_curve
    table, ece = [], 0.0
    for b in range(BINS):
        m = idx == b
        n = int(m.sum())
        row = {"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": n}
        if n:
            row["mean_predicted"] = float(p[m].mean())
            row["observed_rate"] = float(y[m].mean())
            ece += n / len(p) * abs(row["mean_predicted"] - row["observed_rate"])
        table.append(row)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=BINS, strategy="uniform")
    full = [r for r in table if r["count"]]
    assert np.allclose(prob_true, [r["observed_rate"] for r in full], rtol=0, atol=1e-15)
    assert np.allclose(prob_pred, [r["mean_predicted"] for r in full], rtol=0, atol=1e-15)
    return {"brier": brier_score_loss(y, p), "ece": ece, "bins": table}


def groups(y, p, g, t):
    out = []
    for name in sorted(set(g)):
        m = g == name
        yy, pp = y[m], p[m]
        pred = (pp >= t).astype(int)
        row = {"group": name, "n": int(m.sum()), "positives": int(yy.sum())}
        if 0 < yy.sum() < len(yy):
            row["roc_auc"] = roc_auc_score(yy, pp)
        if yy.sum() > 0:
            row["sensitivity"] = recall_score(yy, pred, pos_label=1)
        if yy.sum() < len(yy):
            row["specificity"] = recall_score(yy, pred, pos_label=0, zero_division=0)
        out.append(row)
    return out


def curves(y, p):
    # Every distinct probability is a vertex; the PR curve is returned with
    # recall ascending, starting at (0, 1) as precision_recall_curve ends.
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    prec, rec, _ = precision_recall_curve(y, p)
    return {"roc_fpr": fpr.tolist(), "roc_tpr": tpr.tolist(),
            "pr_recall": rec[::-1].tolist(), "pr_precision": prec[::-1].tolist()}


def main():
    y, p, g = load()
    ties_across = sum(1 for v in set(p) if len(set(y[p == v])) == 2)
    assert ties_across > 0, "the set must have ties across classes"
    golden = {
        "made_by": f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
                   f"Python {sys.version.split()[0]} (evaluate/testdata/make_golden.py)",
        "n": int(len(y)), "positives": int(y.sum()),
        "distinct_probabilities": int(len(set(p))),
        "probabilities_tied_across_classes": ties_across,
        "roc_auc": roc_auc_score(y, p),
        "average_precision": average_precision_score(y, p),
        "at_threshold": [at_threshold(y, p, t) for t in THRESHOLDS],
        "operating_points": operating_points(y, p),
        "calibration": calibration(y, p),
        "groups_at_0.5": groups(y, p, g, 0.5),
        "curves": curves(y, p),
    }
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
