"""Anchor-aware credit assignment inside TRL's GRPO trainer (docs/attention-rhythm.md "Credit strategies").

GRPO gives every token of a completion the same advantage. The preplan-and-anchor paper (arXiv 2510.13554)
multiplies each token's advantage by a credit weight γ_t read off the model's own attention: preplan tokens,
anchor tokens, or their coupling. TRL's GRPOTrainer accepts per-token advantages [B, T] from a subclass, so
the whole integration is one override: after TRL generates and scores a batch, `ta.token_weights` computes
γ for the padded batch it holds, and the advantages become A_i · γ_{i,t}.

Like the paper's `actor_attn`, the weights come from the *current* policy: after each optimiser step the
policy's weights are written to a folder and loaded by our runtime (on a real model, keep one folder and
overwrite it, or run the rhythm on a separate inference copy of the policy).

    .venv/bin/python examples/grpo_token_weights.py --steps 2 --strategy coupled

Runs on the embedded model (models/tiny-reasoner, a Qwen2 checkpoint) on the CPU in about a minute; the test
suite runs it (tests/python/test_examples.py).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch

import thought_anchors as ta


def make_trainer_class():
    from trl import GRPOTrainer

    class RhythmGRPOTrainer(GRPOTrainer):
        """GRPOTrainer whose advantages are weighted per token by ta.token_weights."""

        def __init__(self, *args, strategy: str = "coupled", rhythm_options: dict | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.strategy = strategy
            self.rhythm_options = rhythm_options or {}
            self._folder = tempfile.TemporaryDirectory(prefix="rhythm-policy-")
            self.recorded: list[dict] = []  # per batch: the sequence advantages and the token weights

        def _current_policy(self) -> "ta.Model":
            # Our runtime reads safetensors + config.json: write the policy's current weights and load them.
            policy = self.accelerator.unwrap_model(self.model)
            policy.save_pretrained(self._folder.name, safe_serialization=True)
            return ta.Model.load(self._folder.name)

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            weights = ta.token_weights(self._current_policy(), out["prompt_ids"], out["completion_ids"],
                                       prompt_mask=out["prompt_mask"], response_mask=out["completion_mask"],
                                       strategy=self.strategy, **self.rhythm_options)
            advantages = out["advantages"]
            self.recorded.append({"advantages": advantages.detach().cpu().clone(), "weights": weights.clone(),
                                  "completion_mask": out["completion_mask"].detach().cpu().clone()})
            out["advantages"] = advantages.unsqueeze(1) * weights.to(advantages.device, advantages.dtype)
            return out

    return RhythmGRPOTrainer


def correct_answer(completions, gt_answer, **_):
    """1 when the completion's last \\boxed{} answer equals the problem's answer, plus 0.5 for giving a boxed
    answer at all (so that a small group of samples differs in reward, and GRPO's advantages are not all 0)."""
    rewards = []
    for completion, target in zip(completions, gt_answer):
        answer = ta.extract_boxed(completion)
        rewards.append((0.5 if answer else 0.0) + (1.0 if answer and ta.answers_equivalent(answer, target) else 0.0))
    return rewards


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--strategy", default="coupled", choices=["union", "preplan", "anchor", "coupled"])
    parser.add_argument("--max-completion-length", type=int, default=160)
    parser.add_argument("--out", default="", help="trainer output folder (default: a temporary one)")
    args = parser.parse_args(argv)

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    torch.manual_seed(0)
    path = ta.embedded_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}

    problem = ta.embedded_problem()
    prompt = ta.render_prompt(ta.Model.load(path).tokenizer, "raw", problem["problem"]).text
    data = Dataset.from_list([{"prompt": prompt, "gt_answer": problem["gt_answer"]}] * 8)

    with tempfile.TemporaryDirectory() as scratch:
        config = GRPOConfig(output_dir=args.out or scratch, max_steps=args.steps, per_device_train_batch_size=4,
                            num_generations=4, max_completion_length=args.max_completion_length,
                            learning_rate=1e-4, temperature=1.0, logging_steps=1, report_to=[], save_strategy="no",
                            use_cpu=True, seed=0, beta=0.0)
        trainer = make_trainer_class()(model=policy, reward_funcs=[correct_answer], args=config, train_dataset=data,
                                       processing_class=tokenizer, strategy=args.strategy)
        trainer.train()

    changed = sum(int(not torch.equal(before[name], p.detach())) for name, p in policy.named_parameters())
    weighted = sum(int((r["weights"] != 1).any()) for r in trainer.recorded)
    print(f"{len(trainer.recorded)} batches weighted with strategy {args.strategy!r} "
          f"({weighted} with some γ != 1); {changed} parameter tensors changed after {args.steps} steps")
    return {"recorded": trainer.recorded, "changed": changed, "steps": trainer.state.global_step}


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
