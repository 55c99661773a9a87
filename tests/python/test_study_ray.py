"""A study on a real local Ray cluster (`ray start --head`, then `anchors study run --ray-address`), its rollouts
from two real `anchors serve` endpoints: a Ray worker killed mid-task, an endpoint killed mid-study and the
driver killed mid-study, and the study still ends with exactly the requested rollouts (docs/studies.md)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import thought_anchors as ta

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "tiny_model"))
import corpus  # noqa: E402

BIN = Path(sys.executable).parent
PROBLEMS = 20
ROLLOUTS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_titled(prefix: str) -> list:
    """pids whose command line starts with prefix (Ray titles a worker running a task `ray::<function>`)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith(prefix):
                out.append(int(entry.name))
    return out


@pytest.fixture
def ray_cluster():
    env = dict(os.environ, OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    started = subprocess.run([str(BIN / "ray"), "start", "--head", f"--port={port}", "--num-cpus=2",
                              "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
                             env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)


def serve(tmp_path: Path, k: int):
    log = open(tmp_path / f"serve{k}.log", "w+")
    proc = subprocess.Popen([str(BIN / "anchors"), "serve", "--model", ta.embedded_model_path(), "--port", "0",
                             "--device", "cpu"], stdout=subprocess.PIPE, stderr=log, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    line = proc.stdout.readline()
    found = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", line)
    assert found, f"anchors serve printed {line!r}"
    return proc, found.group(1)


def finished_units(out: Path) -> int:
    return len(list((out / ".study" / "units" / "tiny").glob("*.json")))


def wait_for(condition, what: str, timeout: float = 600):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_study_on_a_ray_cluster_survives_killed_worker_endpoint_and_driver(tmp_path, ray_cluster):
    servers = [serve(tmp_path, k) for k in range(2)]
    try:
        with open(tmp_path / "problems.jsonl", "w") as handle:
            for p in corpus.heldout_problems(PROBLEMS):
                handle.write(json.dumps(p) + "\n")
        out = tmp_path / "study"
        config = tmp_path / "study.yaml"
        config.write_text(
            f"output: {out}\n"
            f"problems: {{source: {tmp_path / 'problems.jsonl'}}}\n"
            f"models:\n  - name: tiny\n    endpoints: [{servers[0][1]}, {servers[1][1]}]\n"
            f"    tokenizer: {ta.embedded_model_path()}\n    concurrency: 2\n    max_retries: 0\n"
            f"methods:\n  resampling: {{num_rollouts: {ROLLOUTS}, max_tokens: 256, batch: 2}}\n"
            "seed: 5\n")
        command = [str(BIN / "anchors"), "study", "run", str(config), "--ray-address", ray_cluster, "--quiet"]
        driver_log = open(tmp_path / "driver.log", "w+")
        driver = subprocess.Popen(command, stdout=driver_log, stderr=driver_log)

        # 1. A worker killed while it runs a unit: Ray runs the task again, which resumes from disk.
        wait_for(lambda: finished_units(out) >= 2 and processes_titled("ray::_unit_task"), "a running unit")
        victim = processes_titled("ray::_unit_task")[0]
        os.kill(victim, signal.SIGKILL)
        # 2. An endpoint killed mid-study: the pool sends its requests to the other one.
        wait_for(lambda: finished_units(out) >= 5, "five finished units")
        servers[0][0].kill()
        servers[0][0].wait()
        # 3. The driver killed mid-study: running the same command again resumes.
        wait_for(lambda: finished_units(out) >= 8, "eight finished units")
        at_kill = finished_units(out)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        assert at_kill < PROBLEMS, "the study finished before the driver was killed: nothing was tested"
        again = subprocess.run(command, capture_output=True, text=True, timeout=900)
        driver_log.seek(0)
        assert again.returncode == 0, driver_log.read() + again.stdout + again.stderr
        assert f"study: {PROBLEMS} problems analysed" in again.stdout
    finally:
        for proc, _ in servers:
            proc.kill()

    # Exactly the requested rollouts: every sentence of every problem has ROLLOUTS records, none an error.
    markers = [json.loads(p.read_text()) for p in (out / ".study" / "units" / "tiny").glob("*.json")]
    assert len(markers) == PROBLEMS and all(m["status"] == "done" for m in markers)
    total = 0
    for marker in markers:
        folder = out / Path(marker["result"]).parent
        result = ta.load_result(str(folder / "result.json"))
        chunks = sorted(folder.glob("chunk_*"))
        assert len(chunks) == len(result.trace.sentences)
        for chunk in chunks:
            records = json.loads((chunk / "solutions.json").read_text())
            assert len(records) == ROLLOUTS and not any(r.get("error") for r in records), chunk
        total += ROLLOUTS * len(chunks)
        assert marker["rollouts"] == ROLLOUTS * len(chunks)
    progress = json.loads((out / "progress.json").read_text())
    assert progress["finished"] and progress["units"]["done"] == PROBLEMS
    assert progress["rollouts"]["done"] == total
    record = json.loads((out / "study.json").read_text())
    assert [r["mode"] for r in record["runs"]] == ["ray", "ray"]
    assert all(r["ray_address"] == ray_cluster for r in record["runs"])
