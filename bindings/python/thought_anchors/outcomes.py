"""What a rollout ended in: the outcome every black-box entry point reads rollouts with.

    >>> import thought_anchors as ta
    >>> ta.BoxedAnswer().label("so the answer is \\\\boxed{12}.")          # the default
    '12'
    >>> ta.RegexOutcome(r"VERDICT: (yes|no)").label("... VERDICT: no")
    'no'
    >>> ta.MultipleChoice("ABCD").label("Hence the answer is (C).")
    'C'
    >>> ta.FunctionOutcome(lambda text: "long" if len(text) > 100 else "short").label("brief")
    'short'

Pass one as outcome= to ta.analyze / ta.Resampling (or --outcome on the CLI); the problem's
gt_answer is the target it is compared with. See docs/outcomes.md.
"""

from __future__ import annotations

from typing import Callable, Optional

from . import _C
from ._C import BoxedAnswer, ChatJudge, ChatSimilarity, MultipleChoice, Outcome, RegexOutcome, outcome_from_spec  # noqa: F401


class FunctionOutcome(_C.Outcome):
    """An outcome from a Python callable: fn(text) -> label (str) or None.

    matches: optional callable(label, target) -> bool (default: equal strings).
    name: how results name it (default: "python:<function name>").
    """

    def __init__(self, fn: Callable[[str], Optional[str]], *, matches: Optional[Callable[[str, str], bool]] = None,
                 name: Optional[str] = None):
        super().__init__()
        if not callable(fn):
            raise _C.Error(f"FunctionOutcome: expected a callable, got {type(fn).__name__}")
        self._fn = fn
        self._matches = matches
        self._name = name or f"python:{getattr(fn, '__name__', type(fn).__name__)}"

    def name(self) -> str:
        return self._name

    def label(self, text: str) -> Optional[str]:
        value = self._fn(text)
        if value is not None and not isinstance(value, str):
            raise _C.Error(f"FunctionOutcome {self._name}: the function returned {value!r}, expected a str or None")
        return value

    def matches(self, label: str, target: str) -> bool:
        return bool(self._matches(label, target)) if self._matches is not None else label == target


def as_outcome(outcome, where: str):
    """None (the default \\boxed{} answers), an Outcome, a spec string or a callable -> an Outcome or None."""
    if outcome is None or isinstance(outcome, _C.Outcome):
        return outcome
    if isinstance(outcome, str):
        return _C.outcome_from_spec(outcome)
    if callable(outcome):
        return FunctionOutcome(outcome)
    raise _C.Error(f"{where}: outcome must be a ta.Outcome, a spec such as 'regex:ANSWER: (\\w+)' or a callable "
                   f"text -> label, got {type(outcome).__name__}")
