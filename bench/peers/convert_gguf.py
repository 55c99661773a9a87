"""Convert the benchmark checkpoint to GGUF with the converter llama-cpp-python's source package ships.

Runs in the llama.cpp environment (bench/peers/run.sh). The converter is used as it is, with one
exception: it recognises a BPE pre-tokenizer by a hash of how a released tokenizer encodes a test
string, and the benchmark's synthetic tokenizer (bench_peers.write_tokenizer) is not a released
one. Its pre-tokenizer is Qwen2's, so an unrecognised hash is named "qwen2" here; every other
step (tensor names, the vocabulary, the F32 / F16 weights) is the converter's own.

    python bench/peers/convert_gguf.py --source SDIST --checkpoint DIR --outtype f16 --outfile DIR/model-f16.gguf
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="llama-cpp-python's unpacked source package")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--outtype", choices=["f32", "f16"], required=True)
    parser.add_argument("--outfile", required=True)
    args = parser.parse_args()
    llama_cpp = os.path.join(args.source, "vendor", "llama.cpp")
    sys.path[:0] = [llama_cpp, os.path.join(llama_cpp, "gguf-py")]

    import conversion.base as base
    import convert_hf_to_gguf

    recognise = base.TextModel.get_vocab_base_pre

    def qwen2_if_unknown(self, tokenizer):
        try:
            return recognise(self, tokenizer)
        except NotImplementedError:
            return "qwen2"

    base.TextModel.get_vocab_base_pre = qwen2_if_unknown
    partial = args.outfile + ".partial"
    sys.argv = ["convert_hf_to_gguf.py", args.checkpoint, "--outtype", args.outtype, "--outfile", partial]
    convert_hf_to_gguf.main()
    os.replace(partial, args.outfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
