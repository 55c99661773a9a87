"""The example scripts run as documented (examples/*.py; the notebook is test_notebook.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grpo_with_token_weights_runs_two_steps_in_trl():
    """Two GRPO steps of TRL's trainer on the embedded model with coupled-rhythm credit: every batch's
    advantages are weighted per token (γ ∈ {1, 1 + α(γ−1), 1 + (1−α)(γ−1), γ, ...}, 1 on padding), and the
    policy's parameters move."""
    example = load_example("grpo_token_weights")
    done = example.main(["--steps", "2", "--strategy", "coupled"])
    assert done["steps"] == 2
    assert done["changed"] > 0
    assert len(done["recorded"]) >= 2
    for batch in done["recorded"]:
        weights, mask = batch["weights"], batch["completion_mask"].bool()
        assert weights.shape == mask.shape and weights.dtype == torch.float32
        assert torch.all(weights[~mask] == 1.0)
        assert torch.all(weights >= 1.0) and (weights[mask] > 1.0).any()
        # With the defaults (γ = 1.5, α = 0.5) the coupled weights take these values only.
        allowed = torch.tensor([1.0, 1.25, 1.5, 1.75, 2.0])
        assert torch.isclose(weights.unsqueeze(-1), allowed).any(-1).all()
