"""White-box attribution methods as Python objects (the algorithms run in C++).

    >>> import thought_anchors as ta
    >>> model = ta.Model.load("path/to/checkpoint")
    >>> trace = ta.Trace.from_text(reasoning, prompt=prompt)
    >>> result = ta.ReceiverHeads(top_k=16).run(model, trace)
    >>> result.show(); result.plot(); result.plot_matrix("head_kurtosis")

Each ``.run`` returns an :class:`AnalysisResult` (the trace with one attribution),
or adds the attribution to ``into=`` an existing result. The input ids are
``prompt + text`` tokenised with the model's tokenizer, unless ``token_ids`` and
``sentence_spans`` (token ``[begin, end)`` pairs) are given.
"""

from __future__ import annotations

import numbers
import sys
import time
from typing import Callable, Optional, Sequence, Tuple

from . import _C


def _progress_printer(name: str) -> Callable[[int, int, str], None]:
    """progress=True of every long-running function: one line on stderr with the rate and the ETA
    (measured from the first report, so work resumed from disk does not inflate them)."""
    first = []

    def report(done: int, total: int, unit: str) -> None:
        now = time.monotonic()
        if not first:
            first.append((done, now))
        start_done, start = first[0]
        rate = (done - start_done) / (now - start) if now > start and done > start_done else 0.0
        eta = f"{(total - done) / rate:.0f}s" if rate > 0 else ("0s" if done >= total else "?")
        end = "\n" if done >= total else ""
        print(f"\r{name}: {done}/{total} {unit}, {rate:.1f} {unit}/s, eta {eta}   ", end=end, file=sys.stderr,
              flush=True)

    return report


def checked_options(method: str, options: dict) -> dict:
    """`options` of the registered `method`, checked now rather than at .run() by the registry's own rule
    (unknown names and values of the wrong type are a ta.Error naming the option, what it expects and its
    doc). Python's spellings are taken first: numpy scalars, (layer, head) pairs and "2:3,5:0" strings."""
    defaults = dict(_C.method_info(method).default_options)
    given = {}
    for key, value in options.items():
        default = defaults.get(key)
        if isinstance(default, list):
            value = _int_list(method, key, value)
        elif type(value).__name__ in ("bool", "bool_"):  # numpy's too
            value = bool(value)
        elif isinstance(value, numbers.Integral):
            value = int(value)
        elif isinstance(value, numbers.Real):
            value = float(value)
        elif isinstance(value, (list, tuple)):
            value = _int_list(method, key, value)
        if not isinstance(value, (bool, int, float, str, list)):
            raise _C.Error(f"{method}: option {key} cannot be {type(value).__name__} ({value!r})")
        given[key] = value
    return dict(_C.check_options(method, given))


class _WhiteBoxMethod:
    """Options are checked against the registry's defaults when the object is made."""

    name = ""

    def __init__(self, **options):
        self.options = checked_options(self.name, options)

    @classmethod
    def default_options(cls) -> dict:
        return dict(_C.method_info(cls.name).default_options)

    def run(
        self,
        model,
        trace,
        *,
        token_ids=None,
        sentence_spans: Optional[Sequence[Tuple[int, int]]] = None,
        progress=None,
        into=None,
    ):
        """Run on one trace; returns an AnalysisResult (``into`` updated and returned when given).

        progress: None (quiet), True (print to stderr) or a callable(done, total, what).
        """
        if progress is True:
            progress = _progress_printer(self.name)
        attribution = _C.run_method(
            self.name,
            trace,
            model=model,
            token_ids=token_ids,  # a list, a 1-D integer tensor or NumPy array
            sentence_spans=None if sentence_spans is None else [tuple(s) for s in sentence_spans],
            options=self.options,
            progress=progress or None,
        )
        if into is not None:
            into.set_attribution(attribution)
            return into
        return _C.AnalysisResult(trace, [attribution])

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(self.options.items()))
        return f"{type(self).__name__}({shown})"


def _int_list(method: str, key: str, value) -> list:
    """layers=[0, 3] / heads=[(2, 3), (5, 0)] (pairs are written flat: [2, 3, 5, 0]); strings like "0,3" or
    "2:3,5:0" as the command line takes them."""
    if isinstance(value, str):
        return list(_C.parse_int_list(value, f"{method}: option {key}"))
    out = []
    for item in value:
        if isinstance(item, (tuple, list)):
            out.extend(int(x) for x in item)
        elif isinstance(item, numbers.Integral) and type(item).__name__ not in ("bool", "bool_"):
            out.append(int(item))
        else:
            raise _C.Error(f"{method}: option {key} expects integers or (layer, head) pairs, got {value!r}")
    return out


class SentenceAttention(_WhiteBoxMethod):
    """S×S block means of attention between sentences, averaged over layers and heads."""

    name = "sentence_attention"


class ReceiverHeads(_WhiteBoxMethod):
    """Receiver heads (top-k by kurtosis of vertical scores) and sentence receiver scores.

    Options: top_k=20, proximity_ignore=4, exclude_layer0=True, heads=[(layer, head), ...].
    """

    name = "receiver_heads"


class AttentionSuppression(_WhiteBoxMethod):
    """The S×S log-KL matrix of suppressing each sentence's keys in every layer and head.

    Options: temperature=0.6, top_p=0.9999, max_kept=100, batch_lanes=4, reuse_prefix=True.
    """

    name = "attention_suppression"


class AttentionRhythm(_WhiteBoxMethod):
    """Preplan-and-anchor rhythm: WAAD / FAI per token, preplan and anchor tokens, γ weights.

    Options: waad_window=10, fai_near=10, fai_far=100, local_fraction=0.3, global_fraction=0.3,
    layers=[...] (default: the middle third), top_fraction=0.4, gamma=1.5.
    """

    name = "attention_rhythm"


class HeadInfluence(_WhiteBoxMethod):
    """Per attention head, how much the next-token loss over the trace rises when the head's output is zeroed
    (AttentionInfluence): matrices head_influence [L, H] and head_influence_by_sentence [(L*H), S], series
    mean_head_influence / max_head_influence per sentence.

    Options: layers=[...] (default: all), batch_lanes=8 (heads ablated per forward pass).
    """

    name = "head_influence"


def head_influence(model, texts, *, mask=None, scored=None, layers=(), batch_lanes: int = 8, progress=None):
    """Per attention head, the mean loss increase (nats per token) over `texts` when the head's output is zeroed:
    a ta.HeadInfluenceResult (influence [L, H], per-text plain_loss [T] and token_delta [L, H, T]).

    texts: a list of token-id sequences (lists, 1-D tensors or arrays), or a 2-D tensor / array [B, T] with
    `mask` [B, T] (1 for real tokens, left- or right-padded). scored: one (begin, end) span per text of the
    tokens whose prediction counts, in the unpadded text (default: all but the first).
    """
    if progress is True:
        progress = _progress_printer("head_influence")
    if mask is not None or (hasattr(texts, "dim") and texts.dim() == 2) or getattr(texts, "ndim", 1) == 2:
        import torch

        ids = torch.as_tensor(texts)
        if ids.dim() != 2:
            raise _C.Error(f"head_influence: with mask=, texts must be 2-D [batch, tokens], got shape {tuple(ids.shape)}")
        keep = torch.ones_like(ids, dtype=torch.bool) if mask is None else torch.as_tensor(mask).to(torch.bool)
        if keep.shape != ids.shape:
            raise _C.Error(f"head_influence: mask shape {tuple(keep.shape)} differs from texts {tuple(ids.shape)}")
        texts = [ids[b][keep[b].to(ids.device)].cpu() for b in range(ids.shape[0])]
    return _C.head_influence(model, list(texts), scored=None if scored is None else [tuple(s) for s in scored],
                             layers=list(layers), batch_lanes=batch_lanes, progress=progress or None)


def _batch(ids, mask, name: str):
    """(ids [B, N] int64 tensor, mask [B, N] bool tensor or None) from a 2-D tensor / array or a list of
    (possibly ragged) lists; ragged rows are right-padded and masked."""
    import torch

    if isinstance(ids, (list, tuple)) and all(isinstance(r, (list, tuple)) for r in ids):
        if mask is not None:
            raise _C.Error(f"token_weights: {name} as lists of ids are padded here; pass no mask with them")
        width = max((len(r) for r in ids), default=0)
        out = torch.zeros((len(ids), width), dtype=torch.int64)
        made = torch.zeros((len(ids), width), dtype=torch.bool)
        for b, row in enumerate(ids):
            out[b, :len(row)] = torch.as_tensor(list(row), dtype=torch.int64)
            made[b, :len(row)] = True
        return out, made
    tensor = torch.as_tensor(ids)
    if tensor.dim() != 2:
        raise _C.Error(f"token_weights: {name} must be 2-D [batch, tokens] (or a list of lists), got shape "
                       f"{tuple(tensor.shape)}")
    return tensor, None if mask is None else torch.as_tensor(mask)


def token_weights(model, prompt_ids, response_ids, *, prompt_mask=None, response_mask=None, strategy: str = "union",
                  progress=None, **options):
    """Per-token credit weights for a padded batch of responses, the shape RL trainers hold: Tensor[B, R]
    float32 on the CPU, the strategy's γ at each real response token and 1 at padding.

    prompt_ids [B, P] and response_ids [B, R]: tensors (any integer dtype, CPU or the model's device), NumPy
    arrays, or lists of (ragged) lists; prompt_mask / response_mask: 1 for real tokens (left- or right-padded
    prompts alike), default all ones. strategy: "union" (γ on preplan or anchor tokens), "preplan", "anchor"
    or "coupled" (the three strategies of arXiv 2510.13554; docs/attention-rhythm.md "Credit strategies").
    options: attention_rhythm's (gamma, top_fraction, coupled_k, coupled_alpha, tau_waad, tau_delta,
    waad_window, fai_near, fai_far, local_fraction, global_fraction, layers), checked by the registry.
    One forward pass per row (no T×T matrix).

        >>> w = ta.token_weights(model, prompts, responses, response_mask=mask, strategy="coupled")
        >>> loss = -(w * advantages * logprobs * mask).sum() / mask.sum()
    """
    if progress is True:
        progress = _progress_printer("token_weights")
    prompt, pmask = _batch(prompt_ids, prompt_mask, "prompt_ids")
    response, rmask = _batch(response_ids, response_mask, "response_ids")
    checked = checked_options("attention_rhythm", dict(options, credit=strategy))
    return _C.token_weights(model, prompt, response, prompt_mask=pmask, response_mask=rmask, options=checked,
                            progress=progress or None)


def sentence_scores_to_token_weights(trace, scores, tokenizer, *, fill: float = 1.0, add_special_tokens: bool = True):
    """Per-token values of a per-sentence score: Tensor[T] float32 over the trace's token ids (prompt + text, as
    ta.tokenize_trace gives them), each token holding its sentence's score and tokens in no sentence (the prompt,
    whitespace between sentences) or with a NaN score holding `fill`.

    trace: a ta.Trace or an AnalysisResult; scores: one number per sentence (a list, NumPy array or tensor), or
    the name of a score series of the AnalysisResult ("counterfactual_importance_accuracy", ...); tokenizer: a
    ta.Tokenizer or ta.Model. Turn importances into RL credit weights with e.g. `1 + lam * weights`.
    """
    import numpy as np

    if isinstance(trace, _C.AnalysisResult):
        if isinstance(scores, str):
            scores = _series(trace, scores)
        trace = trace.trace
    elif isinstance(scores, str):
        raise _C.Error("sentence_scores_to_token_weights: a score name needs an AnalysisResult, not a bare trace")
    if isinstance(tokenizer, _C.Model):
        tokenizer = tokenizer.tokenizer
    values = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores, dtype=np.float64).ravel()
    return _C.sentence_scores_to_token_weights(trace, values.tolist(), tokenizer, fill=fill,
                                               add_special_tokens=add_special_tokens)


def _series(result, name: str):
    """The score series `name` ("series" when one attribution has it, or "method.series") of an AnalysisResult."""
    method, _, series = name.rpartition(".")
    found = [(m, result.attribution(m).scores[series]) for m in result.methods
             if (not method or m == method) and series in result.attribution(m).scores]
    if len(found) != 1:
        names = sorted(f"{m}.{s}" for m in result.methods for s in result.attribution(m).scores)
        what = "no score" if not found else "more than one method has the score"
        raise _C.Error(f"sentence_scores_to_token_weights: {what} {name!r} (scores: {', '.join(names)})")
    return found[0][1]
