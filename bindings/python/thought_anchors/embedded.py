"""The embedded default: a tiny reasoning model of our own and a problem it can solve.

    >>> import thought_anchors as ta
    >>> model = ta.load_embedded_model()              # models/tiny-reasoner (Qwen2 architecture)
    >>> result = ta.analyze(model, ta.embedded_problem(), "runs/demo", num_rollouts=20)

The model (trained by scripts/tiny_model/train.py on generated arithmetic word problems; see the model
card, models/tiny-reasoner/README.md) ships inside the package, so this works without any download.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import _C

MODEL_NAME = "tiny-reasoner"


def embedded_model_path() -> str:
    """The folder of the embedded model: inside the installed package, else the source tree's models/."""
    here = Path(__file__).resolve().parent
    candidates = [here / "models" / MODEL_NAME,                      # installed wheel
                  here.parents[2] / "models" / MODEL_NAME]           # source tree (bindings/python/thought_anchors)
    for folder in candidates:
        if (folder / "config.json").is_file():
            return str(folder)
    raise _C.Error("the embedded model is missing (looked in " + ", ".join(str(c) for c in candidates) +
                   "); reinstall thought-anchors")


def load_embedded_model(**options) -> _C.Model:
    """ta.Model.load(embedded_model_path(), **options)."""
    return _C.Model.load(embedded_model_path(), **options)


def embedded_problem() -> dict:
    """The bundled demo problem ({"problem", "gt_answer"}): held out from the model's training data."""
    path = Path(embedded_model_path()) / "demo_problem.json"
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def embedded_scenario() -> dict:
    """The bundled scenario (models/tiny-reasoner/demo_scenario.json): a chat the embedded model can play, with
    its target and a regex outcome, in the scenario-file format of docs/thought-branches.md."""
    path = Path(embedded_model_path()) / "demo_scenario.json"
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
