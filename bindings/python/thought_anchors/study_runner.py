"""Running a study: every (model, problem) of a config through the C++ engines, in one process (a thread pool
over the providers) or as Ray tasks on a cluster (docs/studies.md "Running a study").

The work unit is one model and one problem: probe it (when the config selects problems by accuracy), run the
black-box pipeline (`_C.analyze`, the same call as `ta.analyze` and `anchors analyze`), then every other method
of the config on its trace, and write result.json. Everything a unit writes goes through atomic writes and the
rollout store's resume (rollout_store.h), so a unit that is killed and run again, by this process, another
worker or a later run of the study, loses nothing and duplicates nothing. The orchestration here only decides
what runs where and records it; every algorithm runs in C++.

Layout of a study folder:

    <output>/study.json                      the reproducibility record (config, fingerprint, runs)
    <output>/progress.json                   problems, rollouts, rate and ETA (rewritten about once a second)
    <output>/<model>/<kind>_base_solution/problem_N/   the authors' layout + result.json (ta.analyze's)
    <output>/<model>/probes/problem_N.json   a probed problem's samples and accuracy
    <output>/.study/units/<model>/problem_N.json      a finished unit: done or skipped (by selection)
    <output>/.study/progress/<model>/problem_N.json   a running unit's rollouts done / wanted
"""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import os
import platform
import socket
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional

from . import _C
from ._C import Error
from .outcomes import as_outcome
from .study_config import ModelSpec, StudyConfig, load_problems

STUDY_FORMAT = "thought-anchors study 1"


# ---------------------------------------------------------------------------- files


def write_json_atomic(path: str, value) -> None:
    """JSON to path through a temporary file in the same folder and a rename (readers never see half a file)."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise Error(f"{path}: not valid JSON ({e}); the study wrote it atomically, so something else changed it")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_hashes(paths: List[str], cache: dict) -> Dict[str, str]:
    """sha256 of each file, reusing cache entries whose size and mtime still match (large checkpoints are
    hashed once per study, not once per run)."""
    out = {}
    for path in paths:
        st = os.stat(path)
        key = os.path.basename(path)
        old = cache.get(key) or {}
        if old.get("size") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns and old.get("sha256"):
            out[key] = old
        else:
            out[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(path)}
    return out


# ---------------------------------------------------------------------------- per-process resources


def config_path(spec: ModelSpec) -> str:
    """The model's config.json: in the checkpoint folder, else beside the tokenizer (a folder or tokenizer.json)."""
    folder = spec.path or (spec.tokenizer if os.path.isdir(spec.tokenizer) else os.path.dirname(spec.tokenizer))
    return os.path.join(folder, "config.json")


class Resources:
    """What units of one study share in one process: loaded models, providers, tokenizers, the embedder.
    Built lazily (a Ray worker loads a model only when it runs a unit of it) and thread-safe."""

    def __init__(self, cfg: StudyConfig):
        self.cfg = cfg
        self._lock = threading.Lock()
        self._models: Dict[str, _C.Model] = {}
        self._providers: Dict[str, _C.RolloutProvider] = {}
        self._tokenizers: Dict[str, _C.Tokenizer] = {}
        self._max_positions: Dict[str, int] = {}
        self._white_box_locks: Dict[str, threading.Lock] = {}
        self._similarity = None
        self.outcome = as_outcome(cfg.outcome or None, "study")

    def model(self, spec: ModelSpec) -> "_C.Model":
        with self._lock:
            if spec.name not in self._models:
                options = {}
                if spec.device:
                    options["device"] = spec.device
                if spec.dtype:
                    options["dtype"] = spec.dtype
                self._models[spec.name] = _C.Model.load(spec.path, **options)
            return self._models[spec.name]

    def provider(self, spec: ModelSpec) -> "_C.RolloutProvider":
        if not spec.endpoints:
            model = self.model(spec)
            with self._lock:
                if spec.name not in self._providers:
                    self._providers[spec.name] = _C.LocalProvider(model)
                return self._providers[spec.name]
        with self._lock:
            if spec.name not in self._providers:
                members = [_C.OpenAIProvider(url, model=spec.server_model, prompt_mode=spec.prompt_mode,
                                             max_concurrency=spec.concurrency, max_retries=spec.max_retries,
                                             timeout=spec.timeout_seconds)
                           for url in spec.endpoints]
                self._providers[spec.name] = _C.ProviderPool(members, concurrency=spec.concurrency)
            return self._providers[spec.name]

    def tokenizer(self, spec: ModelSpec) -> "_C.Tokenizer":
        if not spec.tokenizer:
            tokenizer = self.model(spec).tokenizer
            if tokenizer is None:
                raise Error(f"{spec.path}: the model has no tokenizer.json (set models.tokenizer)")
            return tokenizer
        with self._lock:
            if spec.name not in self._tokenizers:
                path = spec.tokenizer
                if os.path.isdir(path):
                    path = os.path.join(path, "tokenizer.json")
                self._tokenizers[spec.name] = _C.Tokenizer.load(path)
            return self._tokenizers[spec.name]

    def max_positions(self, spec: ModelSpec) -> int:
        """The model's context (config.json's max_position_embeddings), read once; 0 without a config."""
        with self._lock:
            if spec.name not in self._max_positions:
                config = config_path(spec)
                self._max_positions[spec.name] = (
                    int(_C.read_model_config(config).max_position_embeddings) if os.path.isfile(config) else 0)
            return self._max_positions[spec.name]

    def similarity(self):
        with self._lock:
            if self._similarity is None:
                from .resampling import default_embedder
                self._similarity = default_embedder()
            return self._similarity

    def white_box_lock(self, spec: ModelSpec) -> threading.Lock:
        """One white-box pass per model at a time in a process (each holds activations of a whole trace)."""
        with self._lock:
            return self._white_box_locks.setdefault(spec.name, threading.Lock())


_PROCESS_RESOURCES: Dict[str, Resources] = {}
_PROCESS_LOCK = threading.Lock()


def process_resources(cfg: StudyConfig) -> Resources:
    """The Resources of this process for a study (a Ray worker keeps its loaded model between tasks)."""
    key = json.dumps([cfg.output, cfg.raw], sort_keys=True, default=str)
    with _PROCESS_LOCK:
        if key not in _PROCESS_RESOURCES:
            _PROCESS_RESOURCES[key] = Resources(cfg)
        return _PROCESS_RESOURCES[key]


# ---------------------------------------------------------------------------- one unit


def unit_id(problem: dict) -> str:
    """problem_N, the folder the C++ pipeline gives this problem (FNV-1a of its text)."""
    return _C.problem_folder_name(problem["problem"], scenario=json.dumps(problem["scenario"])
                                  if problem.get("scenario") else "")


def _paths(cfg: StudyConfig, model: str, key: str) -> dict:
    root = os.path.join(cfg.output, ".study")
    return {"marker": os.path.join(root, "units", model, key + ".json"),
            "progress": os.path.join(root, "progress", model, key + ".json"),
            "probe": os.path.join(cfg.output, model, "probes", key + ".json"),
            "model_root": os.path.join(cfg.output, model)}


def _resampling_options(cfg: StudyConfig) -> dict:
    """The resampling method's options, completed with the registry's defaults."""
    options = dict(_C.method_info("resampling").default_options)
    options.update(cfg.methods["resampling"])
    return options


class _UnitProgress:
    """A running unit's progress file, rewritten at most twice a second (and at every stage change)."""

    def __init__(self, path: str, cancel: Optional[threading.Event]):
        self.path, self.cancel = path, cancel
        self.last = 0.0
        # start_done: the rollouts already on disk at this unit's first report (a resumed unit), so that
        # done - start_done is what this run generated.
        self.state = {"stage": "starting", "done": 0, "total": 0, "start_done": None, "unit": "rollouts",
                      "pid": os.getpid(), "host": socket.gethostname()}

    def stage(self, name: str) -> None:
        self.state["stage"] = name
        self._write()

    def __call__(self, done: int, total: int, unit: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Error("study: cancelled")
        if self.state["start_done"] is None:
            self.state["start_done"] = int(done)
        self.state.update(done=int(done), total=int(total), unit=unit)
        now = time.monotonic()
        if now - self.last >= 0.5 or done >= total:
            self._write()

    def _write(self) -> None:
        self.last = time.monotonic()
        write_json_atomic(self.path, dict(self.state, updated=time.time()))


def _probe(cfg: StudyConfig, spec: ModelSpec, problem: dict, res: Resources, path: str) -> dict:
    """k samples from the problem's prompt, graded by the study's outcome; cached in path."""
    found = _read_json(path)
    sel = cfg.selection
    if found is not None and found.get("samples") == sel.probe:
        return found
    if not problem["gt_answer"]:
        raise Error(f"study: selection.probe needs each problem's answer; problem {problem['id']} has none")
    options = _resampling_options(cfg)
    tokenizer = res.tokenizer(spec)
    prompt = _C.analysis_prompt(problem["problem"], scenario=json.dumps(problem["scenario"])
                                if problem.get("scenario") else "")
    ids = tokenizer.encode(prompt, add_special_tokens=True).ids
    max_tokens = sel.max_tokens or int(options["max_tokens"])
    limit = res.max_positions(spec)
    if limit:
        max_tokens = max(1, min(max_tokens, limit - len(ids)))
    outcome = res.outcome or _C.BoxedAnswer()
    batch = max(1, int(options["batch"]))
    labels = []
    for b, start in enumerate(range(0, sel.probe, batch)):
        n = min(batch, sel.probe - start)
        completions = res.provider(spec).complete(
            ids, n, temperature=float(options["temperature"]), top_p=float(options["top_p"]), max_tokens=max_tokens,
            seed=(cfg.seed + 0x9E3779B97F4A7C15 * (b + 1)) % (1 << 64), min_p=float(options["min_p"]),
            repetition_penalty=float(options["repetition_penalty"]))
        labels.extend(outcome.label(c.text) for c in completions)
    # No label (e.g. no \boxed{} answer in max_tokens) counts as wrong, as in the resampling accuracies.
    correct = [label is not None and bool(outcome.matches(label, problem["gt_answer"])) for label in labels]
    accuracy = sum(correct) / len(correct)
    lo, hi = sel.accuracy
    record = {"problem_id": problem["id"], "samples": sel.probe, "labels": labels, "correct": correct,
              "accuracy": accuracy, "kept": lo <= accuracy <= hi, "range": [lo, hi], "max_tokens": max_tokens,
              "seed": cfg.seed}
    write_json_atomic(path, record)
    return record


def run_unit(cfg: StudyConfig, spec: ModelSpec, problem: dict, res: Resources,
             cancel: Optional[threading.Event] = None) -> dict:
    """One model × problem, resumable: returns its marker ({"status": "done" | "skipped", ...}), with
    "this_run": whether this call made it (False: it was already finished)."""
    key = unit_id(problem)
    paths = _paths(cfg, spec.name, key)
    marker = _read_json(paths["marker"])
    if marker is not None:
        return dict(marker, this_run=False)
    started = time.time()
    progress = _UnitProgress(paths["progress"], cancel)
    if cfg.selection.probe:
        progress.stage("probe")
        probe = _probe(cfg, spec, problem, res, paths["probe"])
        if not probe["kept"]:
            marker = {"status": "skipped", "model": spec.name, "problem_id": key, "id": problem["id"],
                      "accuracy": probe["accuracy"], "reason": "probe accuracy outside selection.accuracy"}
            write_json_atomic(paths["marker"], marker)
            _remove(paths["progress"])
            return dict(marker, this_run=True)
    progress.stage("rollouts")
    options = dict(cfg.methods["resampling"])
    limit = res.max_positions(spec)
    if limit and "max_positions" not in options:
        options["max_positions"] = limit
    provider, tokenizer = res.provider(spec), res.tokenizer(spec)
    scenario = json.dumps(problem["scenario"]) if problem.get("scenario") else ""
    result = _C.analyze(provider, tokenizer, problem["problem"], problem["gt_answer"], paths["model_root"],
                        similarity=res.similarity(), options=options, base=cfg.base,
                        base_solution=problem.get("base_solution"), outcome=res.outcome, progress=progress,
                        scenario=scenario)
    rollouts, generated = progress.state["total"], progress.state["total"] - (progress.state["start_done"] or 0)
    found = glob.glob(os.path.join(glob.escape(paths["model_root"]), "*_base_solution", key, "result.json"))
    if len(found) != 1:
        raise Error(f"study: expected one result.json of {key} under {paths['model_root']}, found {len(found)}")
    problem_dir = os.path.dirname(found[0])
    trace = result.trace
    metadata = dict(trace.metadata)
    metadata.update(level=problem["level"], type=problem["type"], source_id=problem["id"], model=spec.name)
    trace.metadata = metadata
    result = _C.AnalysisResult(trace, [result.attribution(m) for m in result.methods])
    others = [m for m in cfg.methods if m != "resampling"]
    for name in others:
        progress.stage(name)
        needs = _C.method_info(name).needs
        kwargs = dict(provider=provider, tokenizer=tokenizer, output_dir=os.path.join(problem_dir, name),
                      outcome=res.outcome, options=cfg.methods[name])
        if "similarity" in needs:
            kwargs["similarity"] = res.similarity()
        if "model" in needs:
            with res.white_box_lock(spec):
                attribution = _C.run_method(name, result.trace, model=res.model(spec), **kwargs)
        else:
            attribution = _C.run_method(name, result.trace, **kwargs)
        result.set_attribution(attribution)
    result.save(found[0])
    if "attention_suppression" in others:
        _C.write_step_importance_supp(result, problem_dir)
    marker = {"status": "done", "model": spec.name, "problem_id": key, "id": problem["id"],
              "result": os.path.relpath(found[0], cfg.output), "sentences": len(result.trace.sentences),
              "rollouts": rollouts, "generated": generated, "seconds": round(time.time() - started, 3),
              "host": socket.gethostname()}
    write_json_atomic(paths["marker"], marker)
    _remove(paths["progress"])
    return dict(marker, this_run=True)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------- the reproducibility record


def _fingerprint(cfg: StudyConfig, models: dict) -> dict:
    """What decides finished results: changing any of it under a finished study is an error (rerun with
    new_run=True). Endpoint URLs, workers and the problem list's length are not in it: more problems, other
    servers of the same model or more workers change no finished result."""
    return {
        "methods": cfg.methods, "outcome": cfg.outcome, "seed": cfg.seed, "base": cfg.base,
        "selection": {"probe": cfg.selection.probe, "accuracy": list(cfg.selection.accuracy),
                      "max_tokens": cfg.selection.max_tokens},
        "problems": {k: v for k, v in asdict(cfg.problems).items() if k not in ("offset", "limit")},
        "models": {name: {k: m.get(k) for k in ("config_sha256", "weights", "tokenizer_sha256", "server_model",
                                                  "dtype")}
                   for name, m in models.items()},
    }


def _model_record(spec: ModelSpec, old: dict) -> dict:
    record = {"path": spec.path, "endpoints": spec.endpoints, "server_model": spec.server_model,
              "tokenizer": spec.tokenizer, "device": spec.device, "dtype": spec.dtype}
    config = config_path(spec)
    record["config_sha256"] = _sha256(config) if os.path.isfile(config) else None
    tokenizer = spec.tokenizer or os.path.join(spec.path, "tokenizer.json")
    if os.path.isdir(tokenizer):
        tokenizer = os.path.join(tokenizer, "tokenizer.json")
    record["tokenizer_sha256"] = _sha256(tokenizer) if os.path.isfile(tokenizer) else None
    weights = sorted(glob.glob(os.path.join(glob.escape(spec.path), "*.safetensors"))) if spec.path else []
    hashes = _file_hashes(weights, (old or {}).get("weight_files", {}))
    record["weight_files"] = hashes
    record["weights"] = {name: h["sha256"] for name, h in hashes.items()}
    return record


def _environment(mode: str, address: Optional[str], cfg: StudyConfig) -> dict:
    import torch

    from . import __version__
    try:
        from . import _build_info
        revision, dirty = _build_info.git_revision, _build_info.git_dirty
    except ImportError:  # pragma: no cover - a build without the generated file
        revision, dirty = "", None
    device = "cpu"
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    record = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": socket.gethostname(),
              "library_version": __version__, "git_revision": revision, "git_dirty": dirty,
              "torch": torch.__version__, "python": sys.version.split()[0], "platform": platform.platform(),
              "device": device, "mode": mode, "workers": cfg.workers}
    if address is not None:
        record["ray_address"] = address
    if mode == "ray":
        import ray
        record["ray"] = ray.__version__
    return record


def _begin(cfg: StudyConfig, new_run: bool, mode: str, address: Optional[str], problems: int) -> dict:
    path = os.path.join(cfg.output, "study.json")
    old = _read_json(path)
    if old is not None and old.get("format") != STUDY_FORMAT:
        raise Error(f"{path}: not a study record of this library (format {old.get('format')!r})")
    if old is not None and new_run:
        moved = f"{cfg.output}.replaced-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
        os.rename(cfg.output, moved)
        print(f"[study] new run: the earlier study folder is now {moved}", file=sys.stderr)
        old = None
    models = {spec.name: _model_record(spec, ((old or {}).get("models") or {}).get(spec.name))
              for spec in cfg.models}
    fingerprint = json.loads(json.dumps(_fingerprint(cfg, models), default=list))
    if old is not None and old.get("fingerprint") != fingerprint:
        before = old.get("fingerprint") or {}
        changed = sorted(k for k in set(before) | set(fingerprint) if before.get(k) != fingerprint.get(k))
        raise Error(f"{path}: this study was run with other settings ({', '.join(changed)} changed); finished "
                    "results would no longer match the config. Restore the settings to resume, or start a new run "
                    "(new_run=True / anchors study run --new-run, which keeps the old folder as "
                    f"{cfg.output}.replaced-<time>)")
    record = {"format": STUDY_FORMAT, "config": cfg.raw, "config_file": cfg.source, "fingerprint": fingerprint,
              "models": models, "problems": {"source": cfg.problems.source, "count": problems},
              "runs": ((old or {}).get("runs") or []) + [_environment(mode, address, cfg)]}
    write_json_atomic(path, record)
    return record


# ---------------------------------------------------------------------------- progress


class StudyProgress:
    """The whole study's progress: units, rollouts, rate and ETA, in progress.json and on a live line."""

    def __init__(self, cfg: StudyConfig, units: List[tuple], show: bool):
        self.cfg, self.show = cfg, show
        self.units = units                          # (model, key)
        self.finished: Dict[tuple, dict] = {}       # (model, key) -> marker
        self.failed: Dict[tuple, str] = {}
        self.known = set(units)
        self.start = time.monotonic()
        self.path = os.path.join(cfg.output, "progress.json")
        self._last_print = 0.0

    def finish(self, unit: tuple, marker: dict) -> None:
        self.finished[unit] = marker

    def fail(self, unit: tuple, message: str) -> None:
        self.failed[unit] = message

    def _running(self) -> Dict[tuple, dict]:
        """The progress files of units not finished in this run (a file a killed run left behind shows
        that unit as running with its old count until it is picked up again)."""
        out = {}
        for path in glob.glob(os.path.join(glob.escape(self.cfg.output), ".study", "progress", "*", "*.json")):
            unit = (os.path.basename(os.path.dirname(path)), os.path.basename(path)[:-5])
            if unit in self.finished or unit in self.failed or unit not in self.known:
                continue
            try:
                state = _read_json(path)
            except Error:
                continue  # advisory only
            if state:
                out[unit] = state
        return out

    def snapshot(self, final: bool = False) -> dict:
        running = self._running()
        done_rollouts = known_total = fresh = 0
        for state in running.values():
            if state.get("unit") == "rollouts" and state.get("start_done") is not None:
                done_rollouts += state["done"]
                known_total += state["total"]
                fresh += state["done"] - state["start_done"]
        totals = []
        for marker in self.finished.values():
            if marker.get("status") == "done":
                done_rollouts += marker.get("rollouts", 0)
                known_total += marker.get("rollouts", 0)
                totals.append(marker.get("rollouts", 0))
                if marker.get("this_run"):
                    fresh += marker.get("generated", 0)
        elapsed = time.monotonic() - self.start
        rate = fresh / elapsed if elapsed > 0 else 0.0
        started = sum(1 for s in running.values() if s.get("total"))
        not_started = len(self.units) - len(self.finished) - len(self.failed) - started
        per_unit = sum(totals) / len(totals) if totals else (known_total / started if started else 0)
        remaining = max(0, known_total - done_rollouts) + max(0, not_started) * per_unit
        eta = remaining / rate if rate > 0 else None
        done_units = sum(1 for m in self.finished.values() if m.get("status") == "done")
        skipped = sum(1 for m in self.finished.values() if m.get("status") == "skipped")
        return {
            "units": {"total": len(self.units), "done": done_units, "skipped": skipped, "failed": len(self.failed),
                      "running": len(running),
                      "pending": len(self.units) - len(self.finished) - len(self.failed) - len(running)},
            "rollouts": {"done": done_rollouts, "known_total": known_total, "this_run": fresh,
                         "per_second": round(rate, 3)},
            "eta_seconds": None if eta is None else round(eta, 1), "elapsed_seconds": round(elapsed, 1),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "finished": final,
            "failures": {f"{m}/{k}": msg for (m, k), msg in self.failed.items()},
        }

    def tick(self, final: bool = False) -> dict:
        snap = self.snapshot(final)
        write_json_atomic(self.path, snap)
        if self.show:
            u, r = snap["units"], snap["rollouts"]
            eta = snap["eta_seconds"]
            eta_text = "?" if eta is None else (f"{eta / 60:.1f}m" if eta >= 90 else f"{eta:.0f}s")
            line = (f"\r[study] problems {u['done'] + u['skipped']}/{u['total']} ({u['skipped']} skipped, "
                    f"{u['failed']} failed, {u['running']} running) | rollouts {r['done']}/{r['known_total']} | "
                    f"{r['per_second']:.1f}/s | eta {eta_text}   ")
            print(line, end="\n" if final else "", file=sys.stderr, flush=True)
        return snap


# ---------------------------------------------------------------------------- the drivers


def _units(cfg: StudyConfig, problems: List[dict]) -> List[tuple]:
    """(model index, problem) pairs, problems deduplicated by their folder (the same text twice is one unit)."""
    seen, unique = set(), []
    for problem in problems:
        key = unit_id(problem)
        if key not in seen:
            seen.add(key)
            unique.append(dict(problem, key=key))
    return [(m, p) for p in unique for m in range(len(cfg.models))]


def run_study(cfg: StudyConfig, *, ray: bool = False, address: Optional[str] = None, new_run: bool = False,
              progress: bool = True) -> dict:
    """Run (or resume) every unit of the study; returns the final progress snapshot. ta.Error at the end
    when units failed (each is retried by the next run)."""
    problems = load_problems(cfg.problems, cfg.source)
    mode = "ray" if (ray or address) else "threads"
    _begin(cfg, new_run, mode, address, len(problems))
    units = _units(cfg, problems)
    tracker = StudyProgress(cfg, [(cfg.models[m].name, p["key"]) for m, p in units], progress)
    if mode == "ray":
        from .study_ray import run_on_ray
        run_on_ray(cfg, units, tracker, address)
    else:
        _run_threads(cfg, units, tracker)
    snap = tracker.tick(final=True)
    if tracker.failed:
        first = next(iter(tracker.failed.items()))
        raise Error(f"study: {len(tracker.failed)} of {len(units)} units failed (run the study again to retry "
                    f"them; progress.json lists each): {first[0][0]}/{first[0][1]}: {first[1]}")
    return snap


def _run_threads(cfg: StudyConfig, units: List[tuple], tracker: StudyProgress) -> None:
    res = process_resources(cfg)
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="study")
    futures = {pool.submit(run_unit, cfg, cfg.models[m], p, res, cancel): (cfg.models[m].name, p["key"])
               for m, p in units}
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                unit = futures[future]
                try:
                    tracker.finish(unit, future.result())
                except Exception as e:  # a unit's failure is recorded; the others go on
                    tracker.fail(unit, str(e))
            tracker.tick()
    except BaseException:
        cancel.set()  # running units stop at their next progress report; what they wrote stays resumable
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
