"""Prefix interventions: edit a trace at one sentence, then resample from the edit (docs/interventions.md).

    >>> import thought_anchors as ta
    >>> model = ta.load_embedded_model()
    >>> trace = ...                                   # a ta.Trace with metadata {"problem": ...}
    >>> result = ta.intervene(trace, model, [ta.Insert(3, "Wait, let me re-check."), ta.Delete(2)],
    ...                       num_rollouts=50, gt_answer="57")
    >>> result.edits[0]["rate_shift"]                 # outcome rate of the edit minus the plain resample

Every edit at sentence i is compared with the baseline resample(i) (the unedited prefix before
sentence i). Rollouts are stored like the resampling ones (resumable: run again with the same out_dir).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import List, Optional

from . import _C
from .outcomes import as_outcome
from .white_box import _progress_printer


def Resample(sentence: int) -> _C.Intervention:  # noqa: N802 (reads like a type)
    """The plain resampling prefix: sentences before `sentence`, unedited (the baseline)."""
    return _C.Intervention("resample", sentence)


def Insert(sentence: int, text: str) -> _C.Intervention:  # noqa: N802
    """`text` right after sentence `sentence`; the rollouts continue after it."""
    return _C.Intervention("insert", sentence, text)


def Substitute(sentence: int, text: str) -> _C.Intervention:  # noqa: N802
    """`text` in place of sentence `sentence`; the rollouts continue after it."""
    return _C.Intervention("substitute", sentence, text)


def Delete(sentence: int) -> _C.Intervention:  # noqa: N802
    """Sentence `sentence` skipped: the next sentence follows its predecessors; rollouts continue after it."""
    return _C.Intervention("delete", sentence)


def Truncate(sentence: int) -> _C.Intervention:  # noqa: N802
    """The trace cut after sentence `sentence`, then the outcome's forced stub: the model answers at once."""
    return _C.Intervention("truncate", sentence)


@dataclass
class InterventionResult:
    """Per edit: rollouts, label counts, outcome rate, its shift and KL from the baseline resample."""

    out_dir: Optional[str]
    outcome: str
    edits: List[dict] = field(default_factory=list)
    baselines: List[dict] = field(default_factory=list)
    generated: int = 0

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{e['kind']}</td><td>{e['sentence']}</td><td>{_html(e['text'][:60])}</td>"
            f"<td>{e['num_rollouts']}</td><td>{e['rate']:.3f}</td><td>{e['baseline_rate']:.3f}</td>"
            f"<td>{e['rate_shift']:+.3f}</td><td>{e['kl_from_baseline']:.4f}</td></tr>" for e in self.edits)
        return ("<table><tr><th>edit</th><th>sentence</th><th>text</th><th>rollouts</th><th>rate</th>"
                f"<th>baseline</th><th>shift</th><th>KL</th></tr>{rows}</table>")

    def __repr__(self) -> str:
        lines = [f"InterventionResult(outcome={self.outcome!r}, {len(self.edits)} edits)"]
        for e in self.edits:
            lines.append(f"  {e['kind']}({e['sentence']}) n={e['num_rollouts']} rate={e['rate']:.3f} "
                         f"shift={e['rate_shift']:+.3f} kl={e['kl_from_baseline']:.4f}")
        return "\n".join(lines)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def intervene(trace, provider, interventions, *, num_rollouts: int = 50, gt_answer: Optional[str] = None,
              outcome=None, tokenizer=None, out_dir: Optional[str] = None, baseline: bool = True, seed: int = 0,
              temperature: float = 0.6, top_p: float = 0.95, min_p: float = 0.0, repetition_penalty: float = 1.0,
              max_tokens: int = 16384, batch: int = 25, progress=None) -> InterventionResult:
    """Run `interventions` (ta.Insert / ta.Substitute / ta.Delete / ta.Truncate / ta.Resample) on `trace`.

    trace: a ta.Trace (or AnalysisResult); its sentences are used as given and its prompt (default: the
    raw reference prompt of trace.metadata["problem"]) precedes the edited prefix.
    provider: a ta.Model, ta.LocalProvider, ta.OpenAIProvider, your ta.RolloutProvider or a server URL.
    gt_answer: the target label (default trace.metadata["gt_answer"]); outcome: as ta.analyze.
    out_dir: where rollouts go (resumable); default a temporary folder removed afterwards.
    progress: True prints to stderr, or a callable(done, total, unit).
    """
    from .resampling import _provider_and_tokenizer

    if isinstance(trace, _C.AnalysisResult):
        trace = trace.trace
    if not isinstance(trace, _C.Trace):
        raise _C.Error(f"intervene: expected a ta.Trace or ta.AnalysisResult, got {type(trace).__name__}")
    if isinstance(interventions, _C.Intervention):
        interventions = [interventions]
    interventions = list(interventions)
    if not all(isinstance(i, _C.Intervention) for i in interventions):
        raise _C.Error("intervene: interventions must be ta.Insert(...), ta.Substitute(...), ta.Delete(...), "
                       "ta.Truncate(...) or ta.Resample(...)")
    provider, tokenizer, max_positions = _provider_and_tokenizer(provider, tokenizer, "intervene")
    metadata = dict(trace.metadata)
    target = gt_answer if gt_answer is not None else metadata.get("gt_answer", "")
    if progress is True:
        progress = _progress_printer("intervene")
    with tempfile.TemporaryDirectory(prefix="thought-anchors-intervene-") as scratch:
        raw = _C.intervene(provider, tokenizer, trace, "", str(target or ""), interventions,
                           str(out_dir or scratch), num_rollouts=num_rollouts, baseline=baseline, seed=seed,
                           temperature=temperature, top_p=top_p, min_p=min_p,
                           repetition_penalty=repetition_penalty, max_tokens=max_tokens,
                           max_positions=max_positions, batch=batch,
                           outcome=as_outcome(outcome, "intervene"), progress=progress or None)
    return InterventionResult(out_dir=str(out_dir) if out_dir else None, outcome=raw["outcome"],
                              edits=list(raw["edits"]), baselines=list(raw["baselines"]),
                              generated=raw["generated"])

