"""Train the tiny reasoning model of models/tiny-reasoner from scratch, on CPU.

1. corpus: reproducible arithmetic word problems with tagged chains of thought (corpus.py);
2. tokenizer: byte-level BPE trained with HF `tokenizers`, laid out as a Qwen2 tokenizer.json
   (NFC normalizer, Split with Qwen2's regex + ByteLevel pre-tokenizer, ByteLevel decoder and
   post-processor) with the special tokens <|endoftext|> (eos and pad), <think>, </think>;
3. model: a small `transformers.Qwen2ForCausalLM` trained with AdamW on the completion tokens
   (everything after the "...Solution: \\n<think>\\n" prompt, EOS included) for a fixed number of
   steps, on fresh examples of the training stream (never a reserved held-out problem).

Seeded throughout: the same command on the same machine and thread count gives the same weights.

    python scripts/tiny_model/train.py                       # the shipped model (9 min on an idle 2-core machine)
    python scripts/tiny_model/train.py --quick --out /tmp/tiny   # a smoke test (seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
import transformers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SPECIAL_TOKENS = ["<|endoftext|>", "<think>", "</think>"]
# Qwen2's pre-tokenizer regex (transformers' Qwen2Converter, Qwen2/2.5 tokenizer.json): digits one by one.
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                 r"""\s*[\r\n]+|\s+(?!\S)|\s+""")


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE(dropout=None, unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
                               fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def tokenizer_config() -> dict:
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                     "special": True}
            for i, t in enumerate(SPECIAL_TOKENS)
        },
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 1024,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def encode_example(tok: Tokenizer, example: corpus.Example) -> tuple[list[int], int]:
    """(ids of prompt + completion + EOS, number of prompt tokens)."""
    prompt = tok.encode(example.prompt()).ids
    ids = tok.encode(example.text()).ids
    assert ids[: len(prompt)] == prompt, "prompt tokens changed when the completion was appended"
    return ids, len(prompt)


def make_batch(tok: Tokenizer, examples, eos_id: int):
    encoded = [encode_example(tok, e) for e in examples]
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), eos_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    for row, (ids, n_prompt) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, n_prompt: len(ids)] = torch.tensor(ids[n_prompt:])
    return input_ids, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "models" / "tiny-reasoner"))
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default 3500, --quick 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=8, help="examples per step")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--vocab", type=int, default=1500)
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=None, help="MLP width (default 8/3 * hidden)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke test: few steps, small tokenizer corpus")
    args = parser.parse_args()
    steps = args.steps if args.steps is not None else (30 if args.quick else 3500)

    t0 = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # Corpus and tokenizer: the tokenizer sees a separate training seed stream (seed + 10_000).
    tok_stream = corpus.training_examples(args.seed + 10_000)
    tok_texts = [next(tok_stream).text() for _ in range(500 if args.quick else 5000)]
    tok = train_tokenizer(tok_texts, args.vocab)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")
    eos_id = tok.token_to_id("<|endoftext|>")
    vocab = tok.get_vocab_size()
    print(f"tokenizer: {vocab} tokens, eos {eos_id} ({time.time() - t0:.1f} s)", flush=True)

    config = transformers.Qwen2Config(
        vocab_size=vocab, hidden_size=args.hidden, intermediate_size=args.intermediate or (8 * args.hidden) // 3,
        num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=1024, rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
        use_sliding_window=False, bos_token_id=None, eos_token_id=eos_id, pad_token_id=eos_id,
        initializer_range=0.02)
    torch.manual_seed(args.seed)
    model = transformers.Qwen2ForCausalLM(config)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    warmup = max(1, min(100, steps // 10))

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    stream = corpus.training_examples(args.seed)
    t_train = time.time()
    tokens_seen = 0
    window_tokens, window_t, window_loss, window_n = 0, time.time(), 0.0, 0
    log_every = 5 if args.quick else 25
    pending: list = []
    for step in range(steps):
        if not pending:  # draw 4 batches at once and group them by length (less padding)
            pool = sorted((next(stream) for _ in range(4 * args.batch)), key=lambda e: len(e.text()))
            pending = [pool[i * args.batch:(i + 1) * args.batch] for i in range(4)]
            random.Random(args.seed * 1_000_003 + step).shuffle(pending)
        input_ids, labels = make_batch(tok, pending.pop(), eos_id)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=input_ids, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        n_tok = input_ids.numel()
        tokens_seen += n_tok
        window_tokens += n_tok
        window_loss += loss.item()
        window_n += 1
        if (step + 1) % log_every == 0 or step + 1 == steps:
            now = time.time()
            print(f"step {step + 1}/{steps}  loss {window_loss / window_n:.4f}  lr {lr_at(step):.2e}  "
                  f"{window_tokens / (now - window_t):.0f} tokens/s  elapsed {now - t0:.0f} s", flush=True)
            window_tokens, window_t, window_loss, window_n = 0, now, 0.0, 0

    model.eval()
    model.save_pretrained(str(out), safe_serialization=True)
    transformers.GenerationConfig(
        bos_token_id=None, eos_token_id=eos_id, pad_token_id=eos_id, do_sample=True, temperature=0.6, top_p=0.95,
        max_new_tokens=400).save_pretrained(str(out))
    # A greedy sample as a sanity check of the format.
    example = corpus.heldout_examples(1, args.seed)[0]
    prompt = torch.tensor([tok.encode(example.prompt()).ids])
    with torch.no_grad():
        generated = model.generate(prompt, max_new_tokens=20 if args.quick else 300, do_sample=False, eos_token_id=eos_id,
                                   pad_token_id=eos_id)
    print("greedy sample on a held-out problem (gold", example.answer, "):")
    print(tok.decode(generated[0].tolist(), skip_special_tokens=False))
    total = time.time() - t0
    print(f"trained {steps} steps, {tokens_seen:,} tokens (padded) in {time.time() - t_train:.0f} s; "
          f"total time {total:.0f} s ({total / 60:.1f} min)", flush=True)


if __name__ == "__main__":
    main()
