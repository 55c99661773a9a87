"""thought_anchors: which sentences of an LLM's chain of thought matter.

A thin Python layer over the C++ core (``thought_anchors._C``): every algorithm
runs in C++; this package adds notebook display and plotting.

    >>> import thought_anchors as ta
    >>> sentences = ta.split_sentences(trace_text)
    >>> result = ta.import_reference("path/to/problem_330")
    >>> result            # renders as HTML in Jupyter
"""

# LibTorch must be loaded (by torch itself) before the extension that links it.
import torch as _torch  # noqa: F401

from . import _C
from ._C import (  # noqa: F401
    AnalysisResult,
    AnswerDistribution,
    AttentionControl,
    Attribution,
    BaseSolution,
    Completion,
    LocalProvider,
    OpenAIProvider,
    ProviderPool,
    RolloutProvider,
    Embedder,
    Encoding,
    HeadInfluenceResult,
    Problem,
    ProblemRollouts,
    RenderedPrompt,
    ResamplingMetrics,
    Rollout,
    SentenceMetrics,
    SentenceRollouts,
    Error,
    MethodInfo,
    Model,
    ModelConfig,
    SegmentOptions,
    Sentence,
    Tokenizer,
    Trace,
    answer_numeric_value,
    attention_rhythm,
    centre_suppression_matrix,
    fisher_kurtosis,
    receiver_heads,
    rhythm_credit,
    run_method,
    suppression_matrix,
    tokenize_trace,
    vertical_scores,
    answers_equivalent,
    cosine_similarity,
    extract_all_boxed,
    extract_boxed,
    import_reference,
    kl_divergence,
    kl_divergence_binary,
    load_result,
    choose_score,
    method_info,
    methods,
    next_token_distribution,
    normalize_answer,
    normalize_answer_reference,
    read_alternatives,
    read_model_config,
    read_rollouts,
    render_prompt,
    render_report_html,
    resampling_metrics,
    save_result,
    sentence_attention,
    split_sentences,
    write_reference_outputs,
    write_step_importance_supp,
    write_report,
)
from ._C import (  # noqa: F401
    ChatLabels, function_tag_methods, function_tag_names, function_tag_rules, label_with_chat, tag_functions)
from . import display as _display
from .embedded import embedded_model_path, embedded_problem, embedded_scenario, load_embedded_model  # noqa: F401
from .hf_models import from_transformers as _from_transformers

Model.from_transformers = staticmethod(_from_transformers)
from .outcomes import (  # noqa: F401
    BoxedAnswer, ChatJudge, ChatSimilarity, FunctionOutcome, MultipleChoice, Outcome, RegexOutcome, outcome_from_spec)
from .resampling import Resampling, analyze  # noqa: F401
from .interventions import (  # noqa: F401
    Delete, Insert, InterventionResult, Resample, Substitute, Truncate, intervene)
from ._C import Intervention  # noqa: F401
from .thought_branches import AttentionSteering, HeadAblation, OffPolicy, OnPolicy, Resilience  # noqa: F401
from .study import Study  # noqa: F401
from .white_box import (  # noqa: F401
    AttentionRhythm, AttentionSuppression, HeadInfluence, ReceiverHeads, SentenceAttention, head_influence,
    sentence_scores_to_token_weights, token_weights)

__version__ = _C.__version__

_display.install()

__all__ = [name for name in dir() if not name.startswith("_")]
