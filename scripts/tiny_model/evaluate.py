"""Evaluate the tiny reasoning model with the thought-anchors runtime on held-out problems.

Samples each held-out problem (corpus.heldout_problems: a seed stream disjoint from training) in the
reference raw prompt format at the reference settings (temperature 0.6, top-p 0.95) with
`thought_anchors.Model.sample`, and reports

- accuracy: the first \\boxed{} answer equals the gold answer (`ta.extract_boxed`, `ta.answers_equivalent`);
- boxed_fraction: the completion has a non-empty \\boxed{};
- mean_sentences: sentences of the reasoning (text before </think>) by `ta.split_sentences`;

and writes them as JSON.

    python scripts/tiny_model/evaluate.py                           # models/tiny-reasoner, 100 problems
    python scripts/tiny_model/evaluate.py --model DIR --problems 20 --out /tmp/eval.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import thought_anchors as ta

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def evaluate(model_dir: str, problems: int = 100, samples: int = 1, temperature: float = 0.6, top_p: float = 0.95,
             max_new_tokens: int = 512, seed: int = 0, heldout_seed: int = 0, verbose: bool = False) -> dict:
    model = ta.Model.load(str(model_dir))
    tok = model.tokenizer
    eos = tok.eos_id
    t0 = time.time()
    records = []
    for i, p in enumerate(corpus.heldout_problems(problems, heldout_seed)):
        prompt = corpus.PROMPT_TEMPLATE.format(problem=p["problem"])
        ids = tok.encode(prompt, add_special_tokens=False).ids
        for s in model.sample(ids, samples, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                              seed=seed * 1_000_003 + i, stop_ids=[eos]):
            text = s.text
            reasoning = text.split("</think>")[0]
            answer = ta.extract_boxed(text)
            correct = bool(answer) and ta.answers_equivalent(answer, p["gt_answer"])
            records.append(dict(problem=i, answer=answer, gold=p["gt_answer"], correct=correct,
                                sentences=len(ta.split_sentences(reasoning)), tokens=len(s.ids),
                                finish_reason=s.finish_reason))
            if verbose:
                print(f"[{i}] gold {p['gt_answer']} got {answer!r} {'ok' if correct else 'WRONG'} "
                      f"({records[-1]['sentences']} sentences, {len(s.ids)} tokens)", flush=True)
    n = len(records)
    figures = {
        "model": str(model_dir),
        "problems": problems,
        "samples_per_problem": samples,
        "temperature": temperature,
        "top_p": top_p,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "accuracy": sum(r["correct"] for r in records) / n,
        "boxed_fraction": sum(bool(r["answer"]) for r in records) / n,
        "mean_sentences": sum(r["sentences"] for r in records) / n,
        "min_sentences": min(r["sentences"] for r in records),
        "mean_new_tokens": sum(r["tokens"] for r in records) / n,
        "stopped_at_eos_fraction": sum(r["finish_reason"] != "length" for r in records) / n,
        "problems_with_disagreeing_samples": None,
        "seconds": round(time.time() - t0, 1),
    }
    if samples > 1:
        by_problem: dict[int, set] = {}
        for r in records:
            by_problem.setdefault(r["problem"], set()).add(r["correct"])
        figures["problems_with_disagreeing_samples"] = sum(len(v) > 1 for v in by_problem.values())
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "tiny-reasoner"))
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--samples", type=int, default=1, help="samples per problem")
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON file (default: MODEL/evaluation.json)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    figures = evaluate(args.model, args.problems, args.samples, args.temperature, args.top_p, args.max_new_tokens,
                       args.seed, verbose=args.verbose)
    text = json.dumps(figures, indent=2)
    print(text)
    out = Path(args.out) if args.out else Path(args.model) / "evaluation.json"
    out.write_text(text + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
