"""`anchors analyze` end to end on a random tiny Qwen2 checkpoint: it completes, its outputs pass the
readers, a SIGKILLed run resumes to exactly the requested rollouts with the finished part unchanged
and the same results as an uninterrupted run, runs with other settings never share a folder, and bad
input is a clear error."""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import thought_anchors as ta  # noqa: E402  (a missing dependency is an error, never a skip)
import torch  # noqa: E402
import transformers  # noqa: E402

from conftest import REPO  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("analyze_qwen2")
    config = transformers.Qwen2Config(vocab_size=1024, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                      tie_word_embeddings=False)
    torch.manual_seed(21)
    model = transformers.Qwen2ForCausalLM(config)
    # Random weights produce random bytes, which rarely end a sentence. Make the output head prefer a
    # few words, "?" and "." (the direction of the mean final hidden state, plus noise) so the base
    # trace has a few sentences.
    words = [14, 265, 282, 263, 379, 565, 561, 456, 267, 280, 328, 376, 21, 31]  # ".", " the", ...
    with torch.no_grad():
        hidden = model.model(torch.randint(0, 1024, (4, 64))).last_hidden_state.reshape(-1, 64)
        direction = hidden.mean(0) / hidden.mean(0).norm()
        model.lm_head.weight.zero_()
        for w in words:
            model.lm_head.weight[w] = direction * 10.0 + torch.randn(64) * 0.5
        model.lm_head.weight[14] += direction * 0.5
    model.save_pretrained(path, safe_serialization=True)
    shutil.copy(REPO / "tests" / "data" / "tokenizers" / "qwen2" / "tokenizer.json", path / "tokenizer.json")
    return path


@pytest.fixture
def problem_file(tmp_path) -> Path:
    path = tmp_path / "problem.json"
    path.write_text(json.dumps({"problem": "What is 2 + 3?", "gt_answer": "5"}), encoding="utf-8")
    return path


def analyze_args(cli, model, problem, out, minilm, *extra):
    return [cli, "analyze", "--model", str(model), "--problem", str(problem), "--out", str(out),
            "--embedder", minilm, "--max-tokens", "24", "--seed", "3", *extra]


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kw)


def problem_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*_base_solution/problem_*") if p.is_dir())


def records(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


def solutions_files(out: Path) -> dict[str, Path]:
    return {str(p.relative_to(out)): p for p in sorted(out.glob("*/problem_*/chunk_*/solutions.json"))}


def check_complete(problem_dir: Path, n: int, forced: bool):
    rollouts = ta.read_rollouts(str(problem_dir))
    assert rollouts.chunks, "the base trace has sentences"
    assert rollouts.problem.text == "What is 2 + 3?" and rollouts.problem.gt_answer == "5"
    assert rollouts.base_solution.prompt.endswith("Problem: What is 2 + 3? Solution: \n<think>\n")
    groups = [rollouts.resampled] + ([rollouts.forced] if forced else [])
    assert rollouts.has_forced == forced
    for group in groups:
        assert len(group) == len(rollouts.chunks)
        for s in group:
            assert s.present and s.num_errors == 0 and len(s.rollouts) == n
    for i, chunk in enumerate(rollouts.chunks):
        recs = records(problem_dir / f"chunk_{i}" / "solutions.json")
        assert sorted(r["sample_index"] for r in recs) == list(range(n))
        for r in recs:
            assert r["chunk_removed"] == chunk
            assert r["full_cot"] == rollouts.base_solution.prompt + r["prefix_without_chunk"] + r["rollout"]
            assert rollouts.base_solution.solution.startswith(r["prefix_without_chunk"])
            assert isinstance(r["is_correct"], bool)
        if forced:
            forced_recs = records(Path(rollouts.forced_dir) / f"chunk_{i}" / "solutions.json")
            assert len(forced_recs) == n
            assert all("Therefore, the final answers is \\boxed{" in r["full_cot"] for r in forced_recs)
    return rollouts


def test_analyze_completes_and_outputs_pass_readers(anchors_cli, minilm_dir, tiny_model, problem_file, tmp_path):
    out = tmp_path / "out"
    done = run(analyze_args(anchors_cli, tiny_model, problem_file, out, minilm_dir,
                            "--rollouts", "4", "--batch", "2", "--forced"))
    assert done.returncode == 0, done.stderr
    assert "top" in done.stdout and "counterfactual_importance_kl" in done.stdout
    assert "rollouts/s" in done.stderr and "analyze: " in done.stderr
    [problem_dir] = problem_dirs(out)
    assert problem_dir.parent.name in ("correct_base_solution", "incorrect_base_solution")
    rollouts = check_complete(problem_dir, 4, forced=True)
    assert len(rollouts.chunks) >= 2, "the biased tiny model gives a multi-sentence base trace"
    assert (problem_dir.parent.parent / (problem_dir.parent.name + "_forced_answer") / problem_dir.name).is_dir()

    result = ta.load_result(str(problem_dir / "result.json"))
    attribution = result.attribution("resampling")
    assert len(result.trace.sentences) == len(attribution.score("counterfactual_importance_kl"))
    assert [s.text for s in result.trace.sentences] == [c for c in rollouts.chunks if len(c) >= 4]
    labeled = json.loads((problem_dir / "chunks_labeled.json").read_text(encoding="utf-8"))
    assert [c["chunk"] for c in labeled] == [s.text for s in result.trace.sentences]
    assert (problem_dir / "step_importance.json").exists() and (problem_dir / "summary.json").exists()
    resampled = json.loads((problem_dir / "chunks_resampled.json").read_text(encoding="utf-8"))
    assert resampled and all(len(texts) == 4 for texts in resampled.values())  # every rollout's resampled sentence

    # A second run finds everything on disk: nothing is regenerated, nothing changes.
    before = {k: p.read_bytes() for k, p in solutions_files(out).items()}
    again = run(analyze_args(anchors_cli, tiny_model, problem_file, out, minilm_dir,
                             "--rollouts", "4", "--batch", "2", "--forced", "--quiet"))
    assert again.returncode == 0, again.stderr
    assert "reused from disk, 0 rollouts generated now" in again.stdout
    assert {k: p.read_bytes() for k, p in solutions_files(out).items()} == before
    assert ta.load_result(str(problem_dir / "result.json")) == result

    # A suppression run on the folder's result adds the web app's step_importance_supp.json, which the
    # authors' reader takes back in their orientation (rows: the suppressed sentence).
    supp = run([anchors_cli, "run", "attention_suppression", "--model", str(tiny_model), "--result",
                str(problem_dir / "result.json")])
    assert supp.returncode == 0, supp.stderr
    assert "step_importance_supp.json" in supp.stdout
    ours = ta.load_result(str(problem_dir / "result.json")).attribution("attention_suppression").matrix("suppression")
    theirs = ta.import_reference(str(problem_dir)).attribution("attention_suppression").matrix("sentence_to_sentence")
    S = ours.shape[0]
    for i in range(S):
        for j in range(i + 1, S):
            want = ours[j, i].item()
            assert theirs[i, j].item() == (0.0 if math.isnan(want) else want)


def test_sigkill_then_resume_equals_uninterrupted_run(anchors_cli, minilm_dir, tiny_model, problem_file, tmp_path):
    n = "40"
    extra = ("--rollouts", n, "--batch", "4", "--forced")
    killed_out = tmp_path / "killed"
    proc = subprocess.Popen(analyze_args(anchors_cli, tiny_model, problem_file, killed_out, minilm_dir, *extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not solutions_files(killed_out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    snapshot = {k: p.read_bytes() for k, p in solutions_files(killed_out).items()}
    assert snapshot

    resumed = run(analyze_args(anchors_cli, tiny_model, problem_file, killed_out, minilm_dir, *extra, "--quiet"))
    assert resumed.returncode == 0, resumed.stderr
    assert "reused from disk" in resumed.stdout
    [problem_dir] = problem_dirs(killed_out)
    check_complete(problem_dir, int(n), forced=True)
    after = solutions_files(killed_out)
    for key, content in snapshot.items():
        old, new = json.loads(content), records(after[key])
        assert new[: len(old)] == old, f"{key}: records written before the kill changed"
        if len(old) == int(n):
            assert after[key].read_bytes() == content, f"{key}: a finished chunk was rewritten"

    fresh_out = tmp_path / "fresh"
    fresh = run(analyze_args(anchors_cli, tiny_model, problem_file, fresh_out, minilm_dir, *extra, "--quiet"))
    assert fresh.returncode == 0, fresh.stderr
    fresh_files = solutions_files(fresh_out)
    assert fresh_files.keys() == after.keys()
    for key in after:
        by_index = lambda recs: sorted(recs, key=lambda r: r["sample_index"])  # noqa: E731
        assert by_index(records(after[key])) == by_index(records(fresh_files[key])), key
    [fresh_dir] = problem_dirs(fresh_out)
    assert fresh_dir.relative_to(fresh_out) == problem_dir.relative_to(killed_out)
    for name in ("base_solution.json", "chunks.json", "chunks_labeled.json", "chunks_resampled.json",
                 "step_importance.json", "summary.json"):
        assert (fresh_dir / name).read_bytes() == (problem_dir / name).read_bytes(), name
    assert ta.load_result(str(fresh_dir / "result.json")) == ta.load_result(str(problem_dir / "result.json"))


def test_bad_input_is_a_clear_error(anchors_cli, minilm_dir, tiny_model, tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "nope.json"
    done = run(analyze_args(anchors_cli, tiny_model, missing, out, minilm_dir))
    assert done.returncode != 0 and "nope.json" in done.stderr

    no_problem = tmp_path / "bad.json"
    no_problem.write_text(json.dumps({"gt_answer": "5"}), encoding="utf-8")
    done = run(analyze_args(anchors_cli, tiny_model, no_problem, out, minilm_dir))
    assert done.returncode != 0 and "bad.json" in done.stderr and '"problem"' in done.stderr

    good = tmp_path / "good.json"
    good.write_text(json.dumps({"problem": "What is 2 + 3?", "gt_answer": "5"}), encoding="utf-8")
    done = run(analyze_args(anchors_cli, tiny_model, good, out, minilm_dir, "--rollouts", "0"))
    assert done.returncode != 0 and "--rollouts" in done.stderr

    env = {k: v for k, v in os.environ.items() if k != "ANCHORS_MINILM_DIR"}
    # An explicit embedder folder must exist.
    done = run(analyze_args(anchors_cli, tiny_model, good, out, str(tmp_path / "no_minilm")), env=env)
    assert done.returncode != 0 and "no_minilm" in done.stderr
    assert not out.exists(), "nothing is written for bad input"


def test_python_analyze_equals_the_cli(anchors_cli, minilm_dir, tiny_model, problem_file, tmp_path):
    """ta.analyze runs the same pipeline: same seed, same files, same result as `anchors analyze`."""
    cli_out, py_out = tmp_path / "cli", tmp_path / "py"
    # Every option of the method is a flag / keyword of its own name (here a sampling and a scoring one).
    done = run(analyze_args(anchors_cli, tiny_model, problem_file, cli_out, minilm_dir,
                            "--rollouts", "3", "--batch", "2", "--quiet", "--min_p", "0.05", "--kl_alpha", "1e-6"))
    assert done.returncode == 0, done.stderr
    seen = []
    model = ta.Model.load(str(tiny_model))
    result = ta.analyze(model, json.loads(problem_file.read_text()), str(py_out), num_rollouts=3, batch=2,
                        seed=3, max_tokens=24, similarity=ta.Embedder.load(minilm_dir), min_p=0.05, kl_alpha=1e-6,
                        progress=lambda done, total, unit: seen.append((done, total, unit)))
    attribution = result.attribution("resampling")
    assert attribution.options["kl_alpha"] == 1e-6 and attribution.metadata["min_p"] == 0.05
    assert seen and seen[-1][0] == seen[-1][1] > 0 and seen[-1][2] == "rollouts"
    [cli_dir], [py_dir] = problem_dirs(cli_out), problem_dirs(py_out)
    assert ta.load_result(str(cli_dir / "result.json")) == result
    cli_files, py_files = solutions_files(cli_out), solutions_files(py_out)
    assert cli_files.keys() == py_files.keys()
    assert all(cli_files[k].read_bytes() == py_files[k].read_bytes() for k in cli_files)
    with pytest.raises(ta.Error, match="problem"):
        ta.analyze(model, {"question": "?"}, str(py_out))
    with pytest.raises(ta.Error, match="unknown option.*num_rolouts"):
        ta.analyze(model, "What is 2 + 3?", str(py_out), num_rolouts=3)
    bad = run(analyze_args(anchors_cli, tiny_model, problem_file, cli_out, minilm_dir, "--rollouts", "3",
                           "--num_rollouts", "4"))
    assert bad.returncode == 2 and "not both" in bad.stderr
    bad = run(analyze_args(anchors_cli, tiny_model, problem_file, cli_out, minilm_dir, "--min_p", "lots"))
    assert bad.returncode == 2 and "--min_p expects a number" in bad.stderr


def _serve(anchors_cli, tiny_model):
    proc = subprocess.Popen([anchors_cli, "serve", "--model", str(tiny_model), "--port", "0", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        found = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", line)
        assert found, f"anchors serve printed {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def served(anchors_cli, tiny_model):
    """`anchors serve` on a free loopback port over the tiny checkpoint; yields its base URL."""
    yield from _serve(anchors_cli, tiny_model)


@pytest.fixture
def served_too(anchors_cli, tiny_model):
    """A second `anchors serve` of the same checkpoint (a provider pool's other member)."""
    yield from _serve(anchors_cli, tiny_model)


def scores_of(result: "ta.AnalysisResult") -> dict:
    """The resampling scores as {name: list}, NaN as None (so == compares them)."""
    return {name: [None if v != v else v for v in values.tolist()]
            for name, values in result.attribution("resampling").scores.items()}


def test_cli_analyze_through_a_server_equals_the_local_model(anchors_cli, minilm_dir, tiny_model, problem_file,
                                                            tmp_path, served, served_too):
    """--server: the same base trace, rollouts and scores as the local model (the server runs one request at a
    time, so lane k of a seeded request is what LocalProvider gives); and so does a pool of two servers
    (--server URL,URL: which server answers a request does not change it)."""
    local_out, remote_out = tmp_path / "local", tmp_path / "remote"
    extra = ("--rollouts", "3", "--batch", "2", "--forced", "--quiet")
    local = run(analyze_args(anchors_cli, tiny_model, problem_file, local_out, minilm_dir, *extra))
    assert local.returncode == 0, local.stderr
    remote = run(analyze_args(anchors_cli, tiny_model, problem_file, remote_out, minilm_dir, *extra,
                              "--server", served))
    assert remote.returncode == 0, remote.stderr
    [local_dir], [remote_dir] = problem_dirs(local_out), problem_dirs(remote_out)
    assert local_dir.relative_to(local_out) == remote_dir.relative_to(remote_out)
    check_complete(remote_dir, 3, forced=True)
    local_files, remote_files = solutions_files(local_out), solutions_files(remote_out)
    assert local_files.keys() == remote_files.keys() and local_files
    assert all(local_files[k].read_bytes() == remote_files[k].read_bytes() for k in local_files)
    local_result = ta.load_result(str(local_dir / "result.json"))
    remote_result = ta.load_result(str(remote_dir / "result.json"))
    assert remote_result.trace == local_result.trace
    assert scores_of(remote_result) == scores_of(local_result)
    assert remote_result.attribution("resampling").metadata["provider"].startswith("openai:")

    pooled_out = tmp_path / "pooled"
    pooled = run(analyze_args(anchors_cli, tiny_model, problem_file, pooled_out, minilm_dir, *extra,
                              "--server", f"{served},{served_too}"))
    assert pooled.returncode == 0, pooled.stderr
    pooled_files = solutions_files(pooled_out)
    assert pooled_files.keys() == local_files.keys()
    assert all(local_files[k].read_bytes() == pooled_files[k].read_bytes() for k in local_files)
    [pooled_dir] = problem_dirs(pooled_out)
    pooled_result = ta.load_result(str(pooled_dir / "result.json"))
    assert scores_of(pooled_result) == scores_of(local_result)
    provider = pooled_result.attribution("resampling").metadata["provider"]
    assert provider.startswith(f"pool[openai:{served} (") and f", openai:{served_too} (" in provider


def test_base_kind_is_regenerated_until_it_matches(anchors_cli, minilm_dir, tiny_model, problem_file, tmp_path):
    """--base incorrect lands in incorrect_base_solution; --base correct on a model that never writes the right
    \\boxed{} answer fails with a clear error after its attempts and writes nothing."""
    out = tmp_path / "incorrect"
    done = run(analyze_args(anchors_cli, tiny_model, problem_file, out, minilm_dir, "--rollouts", "1", "--quiet",
                            "--base", "incorrect"))
    assert done.returncode == 0, done.stderr
    [problem_dir] = problem_dirs(out)
    assert problem_dir.parent.name == "incorrect_base_solution"
    assert records(problem_dir / "base_solution.json")["is_correct"] is False

    never = tmp_path / "correct"
    done = run(analyze_args(anchors_cli, tiny_model, problem_file, never, minilm_dir, "--rollouts", "1",
                            "--base", "correct"))
    assert done.returncode != 0
    assert "no acceptable base solution in 10 attempt(s)" in done.stderr and "incorrect" in done.stderr
    assert not problem_dirs(never)

    no_gt = tmp_path / "no_gt.json"
    no_gt.write_text(json.dumps({"problem": "What is 2 + 3?"}), encoding="utf-8")
    done = run(analyze_args(anchors_cli, tiny_model, no_gt, tmp_path / "x", minilm_dir, "--base", "correct"))
    assert done.returncode != 0 and "gt_answer" in done.stderr


SOLUTION = ("I need to add 2 and 3. First, I start from 2. Then 2 + 3 = 5. Let me check: 5 - 3 = 2. "
            "So the answer is 5.\n</think>\n\nThe answer is \\boxed{5}.")


def test_resampling_object_runs_on_a_given_trace(minilm_dir, tiny_model, tmp_path, served):
    model = ta.Model.load(str(tiny_model))
    embedder = ta.Embedder.load(minilm_dir)
    trace = ta.Trace.from_text(SOLUTION, metadata={"problem": "What is 2 + 3?", "gt_answer": "5"})
    options = dict(num_rollouts=3, batch=2, max_tokens=16, seed=1, similarity=embedder, forced=True)
    seen = []
    result = ta.Resampling(provider=model, out_dir=str(tmp_path / "local"), **options).run(
        trace, progress=lambda done, total, unit: seen.append((done, total, unit)))
    assert seen and seen[-1] == (2 * 3 * len(trace.sentences),) * 2 + ("rollouts",)

    # The given trace is the base solution: its folder kind, its text, its sentences; rollouts from before each.
    [problem_dir] = problem_dirs(tmp_path / "local")
    assert problem_dir.parent.name == "correct_base_solution"
    base = records(problem_dir / "base_solution.json")
    assert base["solution"] == SOLUTION and base["is_correct"] is True
    assert base["prompt"] == ("Solve this math problem step by step. You MUST put your final answer in \\boxed{}. "
                              "Problem: What is 2 + 3? Solution: \n<think>\n")
    assert [s.text for s in result.trace.sentences] == [s.text for s in trace.sentences]
    rollouts = check_complete(problem_dir, 3, forced=True)
    for i, sentence in enumerate(trace.sentences):
        for r in records(problem_dir / f"chunk_{i}" / "solutions.json"):
            assert r["prefix_without_chunk"] == SOLUTION[: sentence.char_start]
    assert len(rollouts.chunks) == len(trace.sentences)
    scores = scores_of(result)
    assert all(len(v) == len(trace.sentences) for v in scores.values())

    # A remote provider (anchors serve) gives the same rollouts; no out_dir means a temporary folder.
    remote = ta.Resampling(provider=ta.OpenAIProvider(served), tokenizer=model, out_dir=str(tmp_path / "remote"),
                           **options).run(trace)
    local_files, remote_files = solutions_files(tmp_path / "local"), solutions_files(tmp_path / "remote")
    assert local_files.keys() == remote_files.keys()
    assert all(local_files[k].read_bytes() == remote_files[k].read_bytes() for k in local_files)
    assert scores_of(remote) == scores
    assert scores_of(ta.Resampling(provider=ta.LocalProvider(model), **options).run(trace)) == scores

    # into= adds the attribution to an existing result of the same trace.
    target = ta.AnalysisResult(result.trace, [])
    assert ta.Resampling(provider=model, out_dir=str(tmp_path / "local"), **options).run(trace, into=target) is target
    assert scores_of(target) == scores


def test_cli_python_and_the_registry_method_are_one_road(anchors_cli, minilm_dir, tiny_model, problem_file,
                                                        tmp_path):
    """`anchors analyze`, ta.analyze, ta.Resampling(...).run(trace) and ta.run_method("resampling", ...) run
    the same method: byte-identical rollout files (resampled and forced) and equal scores for one seed; and
    the method over the rollouts on disk (what `anchors metrics` runs) scores them equally."""
    extra = ("--rollouts", "3", "--batch", "2", "--forced", "--quiet")
    done = run(analyze_args(anchors_cli, tiny_model, problem_file, tmp_path / "cli", minilm_dir, *extra))
    assert done.returncode == 0, done.stderr
    [cli_dir] = problem_dirs(tmp_path / "cli")
    cli_result = ta.load_result(str(cli_dir / "result.json"))
    trace = cli_result.trace
    assert trace.metadata["problem"] == "What is 2 + 3?" and len(trace.sentences) > 1

    model = ta.Model.load(str(tiny_model))
    embedder = ta.Embedder.load(minilm_dir)
    options = dict(num_rollouts=3, batch=2, seed=3, max_tokens=24, forced=True)
    by_analyze = ta.analyze(model, json.loads(problem_file.read_text()), str(tmp_path / "analyze"),
                            similarity=embedder, **options)
    by_object = ta.Resampling(provider=model, similarity=embedder, out_dir=str(tmp_path / "object"),
                              **options).run(trace)
    by_registry = ta.run_method("resampling", trace, provider=ta.LocalProvider(model), tokenizer=model.tokenizer,
                                output_dir=str(tmp_path / "registry"), similarity=embedder,
                                options=dict(options, max_positions=256))
    cli_files = solutions_files(tmp_path / "cli")
    assert len(cli_files) == 2 * len(trace.sentences)
    for name in ("analyze", "object", "registry"):
        files = solutions_files(tmp_path / name)
        assert files.keys() == cli_files.keys(), name
        assert all(files[k].read_bytes() == cli_files[k].read_bytes() for k in cli_files), name
        for f in ("base_solution.json", "chunks.json", "problem.json"):
            assert (tmp_path / name / cli_dir.relative_to(tmp_path / "cli") / f).read_bytes() == \
                (cli_dir / f).read_bytes(), (name, f)
    assert by_analyze == cli_result
    assert scores_of(by_object) == scores_of(cli_result)
    assert scores_of(ta.AnalysisResult(trace, [by_registry])) == scores_of(cli_result)
    assert by_registry.options == cli_result.attribution("resampling").options

    # Scoring only: the rollouts on disk through the same method.
    scored = ta.run_method("resampling", trace, rollouts=ta.read_rollouts(str(cli_dir)), similarity=embedder)
    assert scores_of(ta.AnalysisResult(trace, [scored])) == scores_of(cli_result)

    # Generating needs a provider, a tokenizer and a folder; the trace must name its problem.
    with pytest.raises(ta.Error, match="output_dir"):
        ta.run_method("resampling", trace, provider=ta.LocalProvider(model), similarity=embedder)
    with pytest.raises(ta.Error, match="neither rollouts"):
        ta.run_method("resampling", trace, similarity=embedder)
    with pytest.raises(ta.Error, match="shorter than min_sentence_chars"):
        unmerged = ta.SegmentOptions()
        unmerged.merge_shorter_than = unmerged.drop_shorter_than = 0
        short = ta.Trace.from_text("Hi. " + SOLUTION, options=unmerged, metadata={"problem": "What is 2 + 3?"})
        ta.run_method("resampling", short, provider=ta.LocalProvider(model), model=model,
                      output_dir=str(tmp_path / "short"), similarity=embedder)
    with pytest.raises(ta.Error, match="tokenizer"):
        ta.run_method("resampling", trace, provider=ta.LocalProvider(model), output_dir=str(tmp_path / "x"),
                      similarity=embedder)
    with pytest.raises(ta.Error, match="num_rolouts"):
        ta.run_method("resampling", trace, provider=ta.LocalProvider(model), model=model,
                      output_dir=str(tmp_path / "x"),
                      similarity=embedder, options={"num_rolouts": 3})


def test_resampling_object_bad_input(tiny_model, tmp_path, minilm_dir):
    model = ta.Model.load(str(tiny_model))
    trace = ta.Trace.from_text(SOLUTION, metadata={"problem": "What is 2 + 3?", "gt_answer": "5"})
    with pytest.raises(ta.Error, match="provider"):
        ta.Resampling(num_rollouts=2)
    with pytest.raises(ta.Error, match="provider must be"):
        ta.Resampling(provider=42)
    with pytest.raises(ta.Error, match="tokenizer"):
        ta.Resampling(provider=ta.OpenAIProvider("http://127.0.0.1:9"))
    with pytest.raises(ta.Error, match="problem"):
        ta.Resampling(provider=model).run(ta.Trace.from_text(SOLUTION))
    with pytest.raises(ta.Error, match="num_rollouts"):
        ta.Resampling(num_rollouts=0, provider=model).run(trace)
    with pytest.raises(ta.Error, match="no sentences"):
        ta.Resampling(provider=model).run(ta.Trace.from_text("", metadata={"problem": "What is 2 + 3?"}))
    with pytest.raises(ta.Error, match="malformed|base_url|URL"):
        ta.OpenAIProvider("not a url")
    # A folder that holds another base solution of the problem is not silently mixed.
    embedder = ta.Embedder.load(minilm_dir)
    folder = str(tmp_path / "out")
    ta.Resampling(num_rollouts=1, provider=model, max_tokens=4, similarity=embedder, out_dir=folder).run(trace)
    other = ta.Trace.from_text(SOLUTION.replace("First, I start from 2. ", ""), metadata=dict(trace.metadata))
    with pytest.raises(ta.Error, match="another base solution"):
        ta.Resampling(num_rollouts=1, provider=model, max_tokens=4, similarity=embedder, out_dir=folder).run(other)


def test_runs_with_other_settings_never_share_a_folder(tiny_model, minilm_dir, tmp_path):
    """Issue 17: rollouts of two runs are never mixed in one folder. A later run with another seed or option
    is refused naming the field (the folder's manifest.json); a run while another writer holds the folder is
    refused naming it (.anchors.lock); the same settings resume."""
    model = ta.Model.load(str(tiny_model))
    trace = ta.Trace.from_text(SOLUTION, metadata={"problem": "What is 2 + 3?", "gt_answer": "5"})
    options = dict(num_rollouts=2, batch=2, max_tokens=8, similarity=ta.Embedder.load(minilm_dir),
                   out_dir=str(tmp_path / "out"))
    ta.Resampling(provider=model, seed=1, **options).run(trace)
    [problem_dir] = problem_dirs(tmp_path / "out")
    before = {k: p.read_bytes() for k, p in solutions_files(tmp_path / "out").items()}
    with pytest.raises(ta.Error, match=r'another seed .*"seed" recorded 1, this run 4'):
        ta.Resampling(provider=model, seed=4, **options).run(trace)
    with pytest.raises(ta.Error, match=r'another temperature .*recorded 0\.6, this run 0\.7'):
        ta.Resampling(provider=model, seed=1, temperature=0.7, **options).run(trace)
    manifest = json.loads((problem_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["seed"] == 1 and manifest["options"]["temperature"] == 0.6
    # Another writer holding the folder's lock (here this test, through its own open file).
    with open(problem_dir / ".anchors.lock", "r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ta.Error, match="another writer holds this folder"):
            ta.Resampling(provider=model, seed=1, **options).run(trace)
    assert {k: p.read_bytes() for k, p in solutions_files(tmp_path / "out").items()} == before
    # The same settings resume; more rollouts may be asked for.
    ta.Resampling(provider=model, seed=1, **dict(options, num_rollouts=3)).run(trace)
    check_complete(problem_dir, 3, forced=False)
