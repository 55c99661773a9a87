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
