#!/usr/bin/env python3
"""How well a function tagger (learned or rules) agrees with the authors' labels.

For every sentence of the reference traces (the authors' chunks_labeled.json,
one LLM-made tag per sentence), compare thought_anchors.tag_functions' single
tag (--method learned, the default, or rules) with the authors' tag and print:

  - per category: the authors' count, our count, precision (of the sentences we
    gave the tag, the share the authors gave it too), recall (of the sentences
    the authors gave the tag, the share we gave it too) and F1;
  - overall accuracy (share of sentences whose tag equals the authors') and
    Cohen's kappa (accuracy corrected for the agreement the two tag
    frequencies would give by chance), in total and per trace;
  - the most frequent confusions (authors' tag -> ours);
  - with --rules, how often each rule fires and how often it agrees.

    PYTHONPATH=... python scripts/measure_function_tags.py [--method rules] [--reference DIR] [--rules] [--json FILE]

The learned tagger's own figures (cross-validated, held-out) come from its
trainer, tools/train_function_tagger.cpp (docs/function-tags.md).
"""

import argparse
import collections
import json
import pathlib
import sys

import thought_anchors as ta

REPO = pathlib.Path(__file__).resolve().parent.parent


def reference_folders(root):
    folders = sorted(p.parent for p in pathlib.Path(root).glob("*/*/problem_*/chunks_labeled.json"))
    if not folders:
        sys.exit(f"no */*/problem_*/chunks_labeled.json under {root}")
    return folders


def kappa(pairs):
    n = len(pairs)
    if n == 0:
        return float("nan")
    observed = sum(g == p for g, p in pairs) / n
    gold = collections.Counter(g for g, _ in pairs)
    pred = collections.Counter(p for _, p in pairs)
    expected = sum(gold[c] * pred[c] for c in gold) / (n * n)
    return (observed - expected) / (1 - expected) if expected < 1 else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=str(REPO / "tests" / "data" / "reference"),
                        help="folder holding <model>/<kind>/problem_N/ reference folders")
    parser.add_argument("--method", default="learned", choices=["learned", "rules"], help="which tagger")
    parser.add_argument("--rules", action="store_true", help="also print agreement per rule")
    parser.add_argument("--json", help="write the figures to this file as JSON")
    args = parser.parse_args()

    pairs, per_trace, rules = [], [], collections.defaultdict(lambda: [0, 0])
    for folder in reference_folders(args.reference):
        result = ta.import_reference(str(folder))
        gold = [s.tags[0] if s.tags else "unknown" for s in result.trace.sentences]
        decisions = ta.function_tag_rules(result.trace, method=args.method)
        ours = [tag for tag, _ in decisions]
        trace_pairs = list(zip(gold, ours))
        pairs += trace_pairs
        per_trace.append((folder.relative_to(args.reference).as_posix(), trace_pairs))
        for (g, p), (_, rule) in zip(trace_pairs, decisions):
            rules[rule][0] += 1
            rules[rule][1] += g == p

    names = ta.function_tag_names()
    gold_n = collections.Counter(g for g, _ in pairs)
    pred_n = collections.Counter(p for _, p in pairs)
    hits = collections.Counter(g for g, p in pairs if g == p)
    rows = []
    print(f"{len(pairs)} sentences in {len(per_trace)} reference traces ({args.reference})\n")
    print(f"{'category':<24} {'authors':>7} {'ours':>5} {'precision':>9} {'recall':>7} {'F1':>5}")
    for c in names:
        if gold_n[c] == 0 and pred_n[c] == 0:
            continue
        precision = hits[c] / pred_n[c] if pred_n[c] else float("nan")
        recall = hits[c] / gold_n[c] if gold_n[c] else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        rows.append({"category": c, "authors": gold_n[c], "ours": pred_n[c], "precision": precision,
                     "recall": recall, "f1": f1})
        print(f"{c:<24} {gold_n[c]:>7} {pred_n[c]:>5} {precision:>9.2f} {recall:>7.2f} {f1:>5.2f}")
    accuracy = sum(hits.values()) / len(pairs)
    macro_f1 = sum(r["f1"] for r in rows if r["authors"] > 0) / sum(1 for r in rows if r["authors"] > 0)
    print(f"\noverall accuracy (primary tag = authors' tag): {sum(hits.values())}/{len(pairs)} = {accuracy:.3f}")
    print(f"Cohen's kappa: {kappa(pairs):.3f}   macro-F1 over the authors' categories: {macro_f1:.3f}")
    print("per trace:")
    traces = []
    for name, tp in per_trace:
        acc = sum(g == p for g, p in tp) / len(tp)
        traces.append({"trace": name, "sentences": len(tp), "accuracy": acc, "kappa": kappa(tp)})
        print(f"  {name:<58} {len(tp):>4} sentences  accuracy {acc:.3f}  kappa {kappa(tp):.3f}")

    confusions = collections.Counter((g, p) for g, p in pairs if g != p)
    print("\nmost frequent disagreements (authors' tag -> ours):")
    for (g, p), k in confusions.most_common(10):
        print(f"  {k:>4}  {g} -> {p}")

    if args.rules:
        print("\nper rule (sentences, share agreeing with the authors):")
        for rule, (n, ok) in sorted(rules.items(), key=lambda kv: -kv[1][0]):
            print(f"  {rule:<20} {n:>4}  {ok / n:.2f}")

    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({
            "sentences": len(pairs), "accuracy": accuracy, "kappa": kappa(pairs), "macro_f1": macro_f1,
            "categories": rows, "traces": traces,
            "confusions": [{"authors": g, "ours": p, "count": k} for (g, p), k in confusions.most_common()],
            "rules": {r: {"sentences": n, "agree": ok} for r, (n, ok) in rules.items()},
        }, indent=1) + "\n")


if __name__ == "__main__":
    main()
