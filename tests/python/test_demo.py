"""The main job (scripts/demo.sh) end to end with a reduced rollout count: every method family lands in one
result JSON, the reference-schema files and the report are written, and the output says how many rollouts
it used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import thought_anchors as ta

from conftest import REPO


def test_demo_script_runs_every_method_family(tmp_path, minilm_dir):
    out = tmp_path / "demo"
    env = dict(os.environ, ANCHORS_SKIP_SETUP="1", ANCHORS_MINILM_DIR=minilm_dir)
    # demo.sh calls .venv/bin/anchors; under another interpreter (a dev venv) use the one beside it.
    assert Path(sys.executable).with_name("anchors").exists()
    done = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh"), "--rollouts", "3", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "3 rollouts per sentence (the paper uses 100: a reduced count" in done.stderr
    [problem_dir] = [p for p in out.glob("*_base_solution/problem_*") if p.is_dir()]
    result = ta.load_result(str(problem_dir / "result.json"))
    assert {"resampling", "receiver_heads", "attention_suppression", "attention_rhythm"} <= set(result.methods)
    assert all(s.tags for s in result.trace.sentences), "every sentence is tagged"
    assert len(result.trace.sentences) >= 4
    for name in ("chunks_labeled.json", "step_importance.json", "summary.json"):
        assert json.loads((problem_dir / name).read_text(encoding="utf-8"))
    report = (out / "report.html").read_text(encoding="utf-8")
    assert report.startswith("<!DOCTYPE html>") and result.trace.sentences[0].text.split()[0] in report
