"""Segmentation cost on long texts: `anchors segment --whole-text -` of this build against a baseline build.

The workload is the worst case of issue 17 ("quadratic text handling"): a text made of
"word. " repeated, i.e. one 5-character chunk every 6 bytes. Every chunk is shorter than the
merge threshold, so every second chunk is merged into the next one, and the output has one
sentence per 12 bytes (100,000 sentences per 1.2 MB). Before the fix this was quadratic twice
over: merging erased from the middle of a vector, and each sentence's byte offsets were
converted to code point offsets by walking from the start of the text.

Both sides are the core CLI binary (`anchors`, built without LibTorch) fed the same file on
stdin, one process at a time, with the wall-clock limit --timeout; a run that does not finish in
time is killed and reported as "> T s (did not finish)". Where both sides finish, their outputs
are compared byte for byte. "peak MiB" is the process's peak resident memory (ru_maxrss).

    .venv/bin/python bench/bench_segment.py --anchors build/core/anchors \\
        --baseline /path/to/baseline/build/core/anchors --sizes-mb 1.2 12 50 --timeout 120

Prints a Markdown table (paste into docs/benchmarks.md). Goal (issue 17): linear time, 50 MB in seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time

PIECE = "word. "


def run(binary: str, input_path: str, timeout: float) -> dict:
    """Runs `binary segment --whole-text -` on the file; seconds, peak MiB and a hash of stdout."""
    command = [binary, "segment", "--whole-text", "-"]
    with open(input_path, "rb") as stdin, tempfile.TemporaryFile() as stdout:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        # wait4 rather than proc.wait: it also gives this child's own resource usage.
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if killed.is_set():
            return {"finished": False}
        if proc.returncode != 0:
            return {"finished": False, "error": proc.stderr.read().decode(errors="replace")}
        stdout.seek(0)
        digest = hashlib.sha256()
        sentences = 0
        key = b'"index"'
        tail = b""  # the end of the previous block, so that a key cut in two is counted once
        for block in iter(lambda: stdout.read(1 << 20), b""):
            digest.update(block)
            sentences += (tail + block).count(key)
            tail = block[-(len(key) - 1):]
        return {"finished": True, "seconds": seconds, "peak_mib": usage.ru_maxrss / 1024,
                "sha256": digest.hexdigest(), "sentences": sentences}


def cell(result: dict, timeout: float) -> tuple[str, str]:
    if result.get("error"):
        return "error", ""
    if not result["finished"]:
        return f"> {timeout:.0f} s (did not finish)", ""
    return f"{result['seconds']:.2f}", f"{result['peak_mib']:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--anchors", default="build/core/anchors", help="the anchors CLI of this build")
    parser.add_argument("--baseline", required=True, help="the anchors CLI of the baseline build")
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[1.2, 12, 50])
    parser.add_argument("--timeout", type=float, default=120.0, help="wall-clock limit per run, seconds")
    args = parser.parse_args()

    rows = []
    errors = []
    with tempfile.TemporaryDirectory() as scratch:
        for mb in args.sizes_mb:
            path = os.path.join(scratch, f"{mb}mb.txt")
            repeats = round(mb * 1e6 / len(PIECE))
            with open(path, "w", encoding="utf-8") as f:
                f.write(PIECE * repeats)
            results = {}
            for side, binary in (("ours", args.anchors), ("baseline", args.baseline)):
                print(f"[bench] {mb} MB, {side} ...", file=sys.stderr, flush=True)
                results[side] = run(binary, path, args.timeout)
                if results[side].get("error"):
                    errors.append(f"{side}, {mb} MB: {results[side]['error'].strip()}")
            ours, base = results["ours"], results["baseline"]
            same = ""
            if ours["finished"] and base["finished"]:
                same = "yes" if ours["sha256"] == base["sha256"] else "NO"
            speedup = f"{base['seconds'] / ours['seconds']:.0f}x" if same else ""
            sentences = f"{ours['sentences']:,}" if ours["finished"] else ""
            rows.append((f"{mb:g}", f"{repeats * len(PIECE):,}", sentences, *cell(ours, args.timeout),
                         *cell(base, args.timeout), speedup, same))

    print(f"\n`anchors segment --whole-text - < FILE`, FILE = \"{PIECE}\" repeated; wall seconds, one process at a time")
    print(f"ours: {args.anchors}; baseline: {args.baseline}; limit {args.timeout:.0f} s\n")
    print("| MB | bytes | sentences | ours s | ours peak MiB | baseline s | baseline peak MiB | speed-up | same output |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|:--|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    for error in errors:
        print(f"\nerror: {error}")
    return 1 if errors or any(row[-1] == "NO" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
