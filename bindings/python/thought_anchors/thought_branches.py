"""The Thought Branches methods (docs/thought-branches.md), run in C++ through the method registry.

    >>> import thought_anchors as ta
    >>> model = ta.load_embedded_model()
    >>> trace = ta.Trace.from_text(solution, metadata={"problem": problem, "gt_answer": "57"})
    >>> result = ta.Resilience(num_rollouts=30, sentences=[2, 5], provider=model).run(trace)
    >>> result.attribution("resilience").score("counterfactual_plusplus_importance")

A run with the same out_dir resumes: finished chains and rollouts are kept, and the files equal an
uninterrupted run's.
"""

from __future__ import annotations

import json

from . import _C
from .resampling import _BlackBoxMethod


class Resilience(_BlackBoxMethod):
    """Resilience and counterfactual++ of Thought Branches: for each target sentence, `num_rollouts` chains
    resample from before it, cut before any reappearance of its content (similarity >= threshold) and
    resample again, up to max_iterations rounds; plus `num_rollouts` rollouts that keep the sentence.

    provider: a ta.Model, a ta.RolloutProvider (also a Python subclass) or a server URL; tokenizer: makes
    the token-id prompts (default: the model's). similarity: a ta.Embedder (default: the packaged
    MiniLM), a ta.ChatSimilarity (a chat model judges "the same content?"), a dict {(a, b): value} or a
    callable(pairs) -> values. outcome: what a rollout ended in (default \\boxed{}).
    out_dir: the resumable chain store (default: a temporary folder). options: the "resilience" method's
    (ta.method_info("resilience").option_docs): sentences, num_rollouts, max_iterations,
    similarity_threshold, kl_alpha, compat, target, seed, temperature, top_p, min_p, repetition_penalty,
    max_tokens, max_positions, batch. Series: resilience_persistence, resilience_iterations,
    resilience_returns, counterfactual_plusplus_importance_kl and, with a target, kept_rate,
    abandoned_rate and counterfactual_plusplus_importance.
    """

    name = "resilience"

    def __init__(self, num_rollouts: int = 30, provider=None, **kwargs):
        super().__init__(provider, num_rollouts=num_rollouts, **kwargs)


class OffPolicy(_BlackBoxMethod):
    """Off-policy edits of Thought Branches: insert a text after each target sentence (or put it in the
    sentence's place), roll out `num_rollouts` times, and report per sentence and edit the outcome shift
    from keeping the sentence (`<edit>_rate_shift`, `<edit>_kl`) and the text's mean log-probability per
    token under the model in place (`<edit>_logprob`; `original_logprob` for the sentence itself).

    edits: names of the authors' fixed insertions (ta.method_info("off_policy").option_docs lists them),
    as a list or comma-separated; insert_texts / substitute_texts: your own texts (lists of strings);
    donor: another trace (a result JSON or a text file) whose sentence nearest each fixed disruption is
    inserted (the authors' cross-model insertion). The provider must answer prompt_logprobs (a ta.Model,
    ta.LocalProvider, a vLLM or `anchors serve` URL) unless logprobs=False. Other arguments as ta.Resilience.
    """

    name = "off_policy"

    def __init__(self, num_rollouts: int = 30, provider=None, **kwargs):
        for key in ("insert_texts", "substitute_texts"):
            if isinstance(kwargs.get(key), (list, tuple)):
                kwargs[key] = json.dumps([str(t) for t in kwargs[key]])
        if isinstance(kwargs.get("edits"), (list, tuple)):
            kwargs["edits"] = ",".join(kwargs["edits"])
        if "donor" in kwargs and kwargs["donor"] is not None:
            kwargs["donor"] = str(kwargs["donor"])
        super().__init__(provider, num_rollouts=num_rollouts, **kwargs)


class OnPolicy(_BlackBoxMethod):
    """The on-policy intervention of Thought Branches: for each target sentence and target meaning, sample
    `candidates` continuations from before the sentence, keep the first sentence most similar to the target
    (ties: the likelier one), roll out from the prefix with it in the sentence's place, and compare with the
    off-policy substitution of the target text itself. With search_sentences=k > 1, a best candidate below
    min_similarity is kept and the next sentence searched from after it, up to k sentences. Series on_<t>_*
    and off_<t>_* (rate_shift, kl, logprob), on_<t>_similarity, on_<t>_sentences, kept_rate,
    original_logprob, mean_rate_shift, mean_kl; the chosen texts in metadata on_<t>_<sentence>.

    targets: the authors' disruption names (list or comma-separated); target_texts: your own (a list).
    Other arguments as ta.OffPolicy; similarity= scores the candidates (default: the packaged MiniLM).
    """

    name = "on_policy"

    def __init__(self, num_rollouts: int = 30, provider=None, **kwargs):
        if isinstance(kwargs.get("target_texts"), (list, tuple)):
            kwargs["target_texts"] = json.dumps([str(t) for t in kwargs["target_texts"]])
        if isinstance(kwargs.get("targets"), (list, tuple)):
            kwargs["targets"] = ",".join(kwargs["targets"])
        super().__init__(provider, num_rollouts=num_rollouts, **kwargs)


class _ModelRolloutMethod(_BlackBoxMethod):
    """A method that reads the model itself (its receiver heads) and generates rollouts under an attention
    control: model= is required; provider= defaults to a LocalProvider on it."""

    def __init__(self, model, num_rollouts: int = 30, provider=None, **kwargs):
        if not isinstance(model, _C.Model):
            raise _C.Error(f"{type(self).__name__} needs model=: a ta.Model (got {type(model).__name__})")
        super().__init__(provider if provider is not None else model, num_rollouts=num_rollouts, **kwargs)
        self._model = model


class HeadAblation(_ModelRolloutMethod):
    """Receiver-head ablation (the Thought Anchors paper's test of receiver heads): the model re-solves the
    trace's problem `num_rollouts` times with nothing ablated, with the trace's top_k receiver heads ablated
    (their outputs zeroed from token `start` on), and with as many random heads from the same layers
    (`random_draws` draws). metadata accuracy_none / accuracy_receiver / accuracy_random and drop_receiver /
    drop_random; matrix ablation_accuracy (one row per condition: rate, matching, labelled, rollouts, errors,
    kl_from_none); series receiver_score (what the ablated heads attend to).

    model: the ta.Model (receiver heads and head counts); provider: where the rollouts come from (default: a
    LocalProvider on the model; an `anchors serve` URL applies the control too; vLLM cannot). heads: your own
    (layer, head) pairs instead of the receiver heads. Other arguments as ta.Resilience.
    """

    name = "head_ablation"


class AttentionSteering(_ModelRolloutMethod):
    """Attention steering: for each target sentence, the model continues from just after it `num_rollouts`
    times plainly and `num_rollouts` times with the receiver heads' attention scores toward the sentence
    raised by +beta; series steering_rate_shift, steering_kl, steered_rate, plain_rate, receiver_score.

    sentences: the targets (default every sentence but the last); beta (default 2.0; negative steers away);
    heads: your own (layer, head) pairs instead of the trace's top_k receiver heads. Other arguments as
    ta.HeadAblation.
    """

    name = "attention_steering"
