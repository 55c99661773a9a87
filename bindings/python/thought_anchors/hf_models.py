"""Model.from_transformers: the model a notebook already holds in transformers, wrapped without a copy.

The decoder runs in LibTorch over the transformers model's own parameter tensors (its state_dict shares their
storage): nothing is loaded twice, and the wrapped model's weights change if the transformers model's are changed
in place. What is read is exactly what Model.load reads from a checkpoint folder: the config (as config.json) and
the tensors by name; an unsupported architecture is the same ta.Error naming the nearest supported one.
"""

from __future__ import annotations

import json

from . import _C


def from_transformers(hf_model, tokenizer=None) -> _C.Model:
    """Wrap a transformers *ForCausalLM (Qwen2, Llama, Qwen3, Mistral, Qwen3-MoE, SmolLM3, Phi-3, OLMo-3).

    hf_model: the loaded model; its parameters are shared (their dtype and device are the model's: those of the
        token embedding; a tensor in another dtype is converted, i.e. copied).
    tokenizer: optional, a transformers fast tokenizer or a `tokenizers.Tokenizer`; becomes Model.tokenizer.
    Raises ta.Error for an unsupported architecture or option, or a missing or mis-shaped tensor.
    """
    config = getattr(hf_model, "config", None)
    if config is None or not hasattr(config, "to_json_string"):
        raise _C.Error(f"from_transformers: expected a transformers model, got {type(hf_model).__name__}")
    fields = json.loads(config.to_json_string(use_diff=False))
    if not fields.get("architectures"):  # a model built from a config, not loaded, has none recorded
        fields["architectures"] = [type(hf_model).__name__]
    tensors = dict(hf_model.state_dict())  # detached views of the parameters: the same storage
    tokenizer_json = None
    if tokenizer is not None:
        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
        if not hasattr(backend, "to_str"):
            raise _C.Error(f"from_transformers: tokenizer must be a fast (tokenizers-backed) tokenizer, got "
                           f"{type(tokenizer).__name__}")
        tokenizer_json = backend.to_str()
    return _C.Model.from_tensors(json.dumps(fields), tensors, tokenizer_json,
                                 source=f"{type(hf_model).__name__} (from_transformers)")
