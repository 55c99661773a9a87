"""Running studies (docs/studies.md "Running a study"): configs, problem sources, the one-process runner with
selection, resume and the reproducibility record. The Ray cluster test is test_study_ray.py."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import thought_anchors as ta
from thought_anchors.study_config import ProblemSource, load_config, load_problems

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "tiny_model"))
import corpus  # noqa: E402  (the embedded model's problem generator)


def rollout_counts(problem_dir: Path) -> dict:
    """chunk index -> (records, error records) of a problem folder's solutions.json files."""
    out = {}
    for chunk in problem_dir.glob("chunk_*"):
        records = json.loads((chunk / "solutions.json").read_text())
        out[int(chunk.name.split("_")[1])] = (len(records), sum(1 for r in records if r.get("error")))
    return out


def base_config(tmp_path: Path, problems: list, **extra) -> dict:
    with open(tmp_path / "problems.jsonl", "w") as handle:
        for p in problems:
            handle.write(json.dumps(p) + "\n")
    cfg = {
        "output": str(tmp_path / "study"),
        "problems": {"source": str(tmp_path / "problems.jsonl")},
        "models": [{"name": "tiny", "path": ta.embedded_model_path(), "device": "cpu"}],
        "methods": {"resampling": {"num_rollouts": 2, "max_tokens": 256, "batch": 2},
                    "receiver_heads": {"top_k": 4}},
        "seed": 3,
        "workers": 2,
    }
    cfg.update(extra)
    return cfg


# ------------------------------------------------------------------------------------------------ configs


def test_config_files_yaml_and_toml_give_the_same_config(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"problem": "What is 2 + 3?", "gt_answer": "5"}\n')
    (tmp_path / "s.toml").write_text(
        'output = "out"\nseed = 1\n[problems]\nsource = "p.jsonl"\n[[models]]\nname = "m"\npath = "ckpt"\n'
        '[methods.resampling]\nnum_rollouts = 7\n[selection]\nprobe = 4\naccuracy = [0.25, 0.75]\n')
    (tmp_path / "s.yaml").write_text(
        "output: out\nseed: 1\nproblems: {source: p.jsonl}\nmodels: [{name: m, path: ckpt}]\n"
        "methods: {resampling: {num_rollouts: 7}}\nselection: {probe: 4, accuracy: [0.25, 0.75]}\n")
    a, b = load_config(tmp_path / "s.toml"), load_config(tmp_path / "s.yaml")
    for cfg in (a, b):
        assert cfg.output == str(tmp_path / "out")  # relative to the config file
        assert cfg.problems.source == str(tmp_path / "p.jsonl")
        assert cfg.models[0].path == str(tmp_path / "ckpt")
        assert cfg.methods == {"resampling": {"num_rollouts": 7}}
        assert cfg.selection.probe == 4 and cfg.selection.accuracy == (0.25, 0.75)
    assert a.raw == b.raw


@pytest.mark.parametrize("change, message", [
    ({"colour": 1}, "unknown key 'colour'"),
    ({"output": None}, "output must be a folder path"),
    ({"methods": {"resampling": {"num_rollout": 3}}}, "num_rollout"),
    ({"methods": {"nope": {}}}, "unknown method 'nope'"),
    ({"methods": {"receiver_heads": {}}}, "methods must include resampling"),
    ({"selection": {"probe": 4, "accuracy": [0.8, 0.2]}}, "0 <= lo <= hi <= 1"),
    ({"models": [{"name": "a/b", "path": "x"}]}, "plain folder name"),
    ({"models": [{"name": "a"}]}, "needs path (a local checkpoint) or endpoints"),
    ({"models": [{"name": "a", "endpoints": ["http://x"], "tokenizer": "t"}],
      "methods": {"resampling": {}, "receiver_heads": {}}}, "need path"),
    ({"base": "best"}, "base must be any, correct or incorrect"),
])
def test_config_mistakes_are_errors_naming_the_key(tmp_path, change, message):
    cfg = {"output": "o", "problems": {"source": "p.jsonl"}, "models": [{"name": "m", "path": "x"}],
           "methods": {"resampling": {}}}
    cfg.update(change)
    if cfg.get("output") is None:
        cfg["output"] = 3
    with pytest.raises(ta.Error, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(cfg)


def test_bad_config_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("output = [unclosed\n")
    with pytest.raises(ta.Error, match="bad.toml: not a valid TOML file"):
        load_config(bad)
    with pytest.raises(ta.Error, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


# ------------------------------------------------------------------------------------------------ sources


MATH_ROWS = [
    {"problem": "Compute $1+1$.", "level": "Level 1", "type": "Algebra", "solution": "It is $\\boxed{2}$."},
    {"problem": "Compute $2+2$.", "level": "Level 5", "type": "Algebra", "solution": "So $\\boxed{4}$."},
    {"problem": "Count 3 dots.", "level": "Level 5", "type": "Counting & Probability",
     "solution": "There are $\\boxed{3}$."},
]


def test_every_problem_source_gives_the_same_rows(tmp_path):
    import datasets
    import pandas as pd

    # A MATH-style folder: <split>/<type>/<n>.json
    for k, row in enumerate(MATH_ROWS):
        folder = tmp_path / "math" / "test" / row["type"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{k}.json").write_text(json.dumps(row))
    # JSONL, Parquet and a datasets save_to_disk folder (a DatasetDict with two splits) of the same rows
    with open(tmp_path / "p.jsonl", "w") as handle:
        for row in MATH_ROWS:
            handle.write(json.dumps(row) + "\n")
    pd.DataFrame(MATH_ROWS).to_parquet(tmp_path / "p.parquet")
    datasets.DatasetDict({"train": datasets.Dataset.from_list(MATH_ROWS[:1]),
                          "test": datasets.Dataset.from_list(MATH_ROWS)}).save_to_disk(str(tmp_path / "hf"))
    datasets.Dataset.from_list(MATH_ROWS).save_to_disk(str(tmp_path / "hf_one"))

    def rows(source, **filters):
        got = load_problems(ProblemSource(source=str(tmp_path / source), **filters))
        return [(r["problem"], r["gt_answer"], r["level"], r["type"]) for r in got]

    expected = [(r["problem"], r["solution"].split("boxed{")[1].split("}")[0], r["level"], r["type"])
                for r in MATH_ROWS]
    assert rows("p.jsonl") == expected
    assert rows("p.parquet") == expected
    assert rows("hf") == expected  # the test split
    assert rows("hf", split="train") == expected[:1]
    assert rows("hf_one") == expected
    assert sorted(rows("math")) == sorted(expected)
    # level / type filters, then offset and limit
    assert rows("p.jsonl", levels=["Level 5"]) == expected[1:]
    assert rows("math", levels=["Level 5"], types=["Algebra"]) == [expected[1]]
    assert rows("p.parquet", offset=1, limit=1) == [expected[1]]
    with pytest.raises(ta.Error, match="no split 'dev'"):
        rows("hf", split="dev")
    with pytest.raises(ta.Error, match="gives no problems after the filters"):
        rows("p.jsonl", types=["Geometry"])
    (tmp_path / "broken.jsonl").write_text('{"problem": "ok"}\n{not json\n')
    with pytest.raises(ta.Error, match=r"broken.jsonl:2: not a JSON line"):
        rows("broken.jsonl")
    (tmp_path / "nofield.jsonl").write_text('{"question": "ok"}\n')
    with pytest.raises(ta.Error, match="no problem text in field 'problem'"):
        rows("nofield.jsonl")


# ------------------------------------------------------------------------------------------------ running


def test_study_runs_selects_resumes_and_records(tmp_path):
    problems = corpus.heldout_problems(4)
    cfg = base_config(tmp_path, problems, selection={"probe": 4, "accuracy": [0.5, 1.0], "max_tokens": 256})
    study = ta.Study(cfg)
    first = study.run(progress=False)
    out = Path(cfg["output"])

    # Selection: each probe file's accuracy decides; kept problems have a result, skipped ones none.
    probes = {p.stem: json.loads(p.read_text()) for p in (out / "tiny" / "probes").glob("*.json")}
    assert len(probes) == 4
    for key, probe in probes.items():
        assert probe["samples"] == 4 and len(probe["labels"]) == 4
        assert probe["accuracy"] == sum(probe["correct"]) / 4
        assert probe["kept"] == (0.5 <= probe["accuracy"] <= 1.0)
        folders = list(out.glob(f"tiny/*_base_solution/{key}"))
        assert len(folders) == (1 if probe["kept"] else 0)
    kept = [k for k, p in probes.items() if p["kept"]]
    assert kept, "no problem was kept: the test needs the embedded model to solve some"
    assert first["units"] == {"total": 4, "done": len(kept), "skipped": 4 - len(kept), "failed": 0,
                              "running": 0, "pending": 0}

    # Every kept problem: both methods in result.json, exactly num_rollouts per sentence, level/type metadata.
    total = 0
    for key in kept:
        (folder,) = out.glob(f"tiny/*_base_solution/{key}")
        result = ta.load_result(str(folder / "result.json"))
        assert set(result.methods) == {"resampling", "receiver_heads"}
        assert result.trace.metadata["model"] == "tiny"
        counts = rollout_counts(folder)
        assert len(counts) == len(result.trace.sentences)
        assert all(c == (2, 0) for c in counts.values()), counts
        total += sum(c[0] for c in counts.values())
    assert first["rollouts"]["done"] == total
    assert json.loads((out / "progress.json").read_text())["finished"] is True

    # The reproducibility record.
    record = json.loads((out / "study.json").read_text())
    model = Path(ta.embedded_model_path())
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    tiny = record["models"]["tiny"]
    assert tiny["weights"] == {"model.safetensors": sha(model / "model.safetensors")}
    assert tiny["config_sha256"] == sha(model / "config.json")
    assert tiny["tokenizer_sha256"] == sha(model / "tokenizer.json")
    (run,) = record["runs"]
    import torch
    assert run["torch"] == torch.__version__ and run["library_version"] == ta.__version__
    assert len(run["git_revision"]) == 40 and run["mode"] == "threads"
    assert record["fingerprint"]["methods"]["resampling"]["num_rollouts"] == 2
    assert record["fingerprint"]["seed"] == 3

    # The table reads the study folder.
    table = study.table()
    assert sorted(set(table["problem"])) == sorted(kept)
    assert "receiver_heads.vertical_score" in table.columns or any(c.startswith("receiver_heads.")
                                                                   for c in table.columns)

    # Re-running resumes: nothing is generated, files are unchanged.
    before = {p: p.read_bytes() for p in out.rglob("solutions.json")}
    again = ta.Study(cfg).run(progress=False)
    assert again["rollouts"]["this_run"] == 0 and again["units"]["done"] == len(kept)
    assert {p: p.read_bytes() for p in out.rglob("solutions.json")} == before
    assert len(json.loads((out / "study.json").read_text())["runs"]) == 2

    # A changed option that would change finished results is an error; new_run starts over beside it.
    changed = dict(cfg, methods={"resampling": {"num_rollouts": 3, "max_tokens": 256, "batch": 2},
                                 "receiver_heads": {"top_k": 4}})
    with pytest.raises(ta.Error, match=r"other settings \(methods changed\).*new_run=True"):
        ta.Study(changed).run(progress=False)
    # More problems, more workers or other endpoints change no finished result: fine.
    ta.Study(dict(cfg, workers=1)).run(progress=False)


def test_study_cli_runs_a_toml_config_and_new_run_keeps_the_old_folder(tmp_path, anchors_cli):
    problems = corpus.heldout_problems(2)
    with open(tmp_path / "problems.jsonl", "w") as handle:
        for p in problems:
            handle.write(json.dumps(p) + "\n")
    config = tmp_path / "study.toml"
    model = ta.embedded_model_path()
    config.write_text(f'output = "out"\n[problems]\nsource = "problems.jsonl"\n[[models]]\nname = "tiny"\n'
                      f'path = "{model}"\n[methods.resampling]\nnum_rollouts = 1\nmax_tokens = 32\n')
    done = subprocess.run([anchors_cli, "study", "run", str(config), "--quiet"], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr
    assert "study: 2 problems analysed, 0 skipped by selection" in done.stdout
    assert len(list((tmp_path / "out" / "tiny").glob("*_base_solution/problem_*/result.json"))) == 2

    config.write_text(config.read_text().replace("num_rollouts = 1", "num_rollouts = 2"))
    refused = subprocess.run([anchors_cli, "study", "run", str(config), "--quiet"], capture_output=True, text=True)
    assert refused.returncode == 1 and "other settings (methods changed)" in refused.stderr
    redone = subprocess.run([anchors_cli, "study", "run", str(config), "--quiet", "--new-run"], capture_output=True,
                            text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert redone.returncode == 0, redone.stderr
    assert len(list(tmp_path.glob("out.replaced-*"))) == 1
    usage = subprocess.run([anchors_cli, "study", "run"], capture_output=True, text=True)
    assert usage.returncode == 2 and "no CONFIG" in usage.stderr
    assert "run or resume a study config" in subprocess.run([anchors_cli, "--help"], capture_output=True,
                                                            text=True).stdout


def test_a_failing_unit_is_reported_and_the_others_finish(tmp_path):
    problems = corpus.heldout_problems(2)
    cfg = base_config(tmp_path, problems, methods={"resampling": {"num_rollouts": 1, "max_tokens": 24}})
    # A given base solution with no sentence the analysis can use fails alone.
    with open(tmp_path / "problems.jsonl", "a") as handle:
        handle.write(json.dumps({"problem": "What is 1 + 1?", "gt_answer": "2", "base_solution": "Hi."}) + "\n")
    with pytest.raises(ta.Error, match=r"1 of 3 units failed"):
        ta.Study(cfg).run(progress=False)
    progress = json.loads((Path(cfg["output"]) / "progress.json").read_text())
    assert progress["units"]["done"] == 2 and progress["units"]["failed"] == 1
