"""A study's configuration (YAML or TOML, one schema: docs/studies.md "Running a study") and its problems.

    >>> cfg = load_config("study.toml")            # or a dict with the same keys
    >>> rows = load_problems(cfg.problems)         # [{"problem", "gt_answer", "level", "type", ...}, ...]

Every mistake is a ta.Error naming the config file (or "config" for a dict) and the key, or the problem
file and the row.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from . import _C
from ._C import Error


@dataclass
class ProblemSource:
    """Where the problems come from and which of them to take."""

    source: str = ""                 # a .jsonl / .parquet file, a `datasets` save_to_disk folder, a MATH folder
    format: str = "auto"             # auto | jsonl | parquet | hf | math
    split: str = ""                  # the split of a DatasetDict folder ("" = the only one, or "test")
    problem_field: str = "problem"
    answer_field: str = "gt_answer"  # also tried: "answer"; else the last \boxed{} of solution_field
    solution_field: str = "solution"
    base_solution_field: str = "base_solution"  # a given base solution (chain of thought and answer), optional
    levels: List[str] = field(default_factory=list)  # keep rows whose "level" is one of these ([] = all)
    types: List[str] = field(default_factory=list)   # keep rows whose "type" is one of these ([] = all)
    offset: int = 0                  # skip this many rows (after the filters)
    limit: int = 0                   # then take at most this many (0 = all)


@dataclass
class ModelSpec:
    """One model of the study: a local checkpoint, a pool of OpenAI-compatible endpoints, or both."""

    name: str = ""                   # the study folder's <model> level (the authors' layout)
    path: str = ""                   # a local checkpoint folder: rollouts from it when no endpoints, white-box methods
    endpoints: List[str] = field(default_factory=list)  # OpenAI-compatible base URLs serving the same model
    server_model: str = ""           # the request's "model" for the endpoints
    tokenizer: str = ""              # tokenizer.json or a checkpoint folder (default: path's)
    concurrency: int = 4             # requests in flight per endpoint
    prompt_mode: str = "ids"         # how prompts reach the endpoints: ids | text
    max_retries: int = 1             # per endpoint, before the pool sends the request elsewhere
    timeout_seconds: float = 600.0
    device: str = ""                 # for path: "" (default), "cpu", "cuda", "cuda:1"
    dtype: str = ""                  # for path: "" (the checkpoint's), "float32", "bfloat16", "float16"


@dataclass
class Selection:
    """Problem selection by probing: k samples per problem, keep those whose accuracy lies in [lo, hi]."""

    probe: int = 0                   # samples per problem (0 = keep every problem)
    accuracy: Tuple[float, float] = (0.25, 0.75)
    max_tokens: int = 0              # new tokens per probe sample (0 = the resampling method's max_tokens)


@dataclass
class StudyConfig:
    output: str = ""
    problems: ProblemSource = field(default_factory=ProblemSource)
    models: List[ModelSpec] = field(default_factory=list)
    methods: Dict[str, dict] = field(default_factory=dict)  # registered method name -> its options
    outcome: str = ""                # "" = \boxed{} answers; a spec as ta.outcome_from_spec takes
    base: str = "any"                # the base trace: any | correct | incorrect (as ta.analyze's base)
    selection: Selection = field(default_factory=Selection)
    seed: int = 0
    workers: int = 2                 # problems in flight at once (one process: threads; Ray: tasks)
    ray_task_retries: int = 3        # Ray: how often a task whose worker died is run again
    source: str = "config"           # the file it came from, for messages
    raw: dict = field(default_factory=dict)  # the config as given (recorded in study.json)


_TOP = {"output", "problems", "models", "methods", "outcome", "base", "selection", "seed", "workers",
        "ray_task_retries"}


def _read_file(path: str) -> dict:
    text_path = Path(path)
    if not text_path.is_file():
        raise Error(f"{path}: no such config file")
    suffix = text_path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib
            with open(text_path, "rb") as handle:
                return tomllib.load(handle)
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as e:  # pragma: no cover - the test suite installs PyYAML
                raise Error(f'{path}: YAML configs need PyYAML: pip install "thought-anchors[study]" '
                            "(or write the config as TOML)") from e
            with open(text_path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
            if data is None:
                data = {}
            return data
    except Error:
        raise
    except Exception as e:  # tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError
        raise Error(f"{path}: not a valid {suffix[1:].upper()} file: {e}") from e
    raise Error(f"{path}: a study config is a .toml, .yaml or .yml file")


def _expect(where: str, key: str, value, kind, what: str):
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise Error(f"{where}: {key} must be {what}, got {value!r}")
    return value


def _strings(where: str, key: str, value) -> List[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Error(f"{where}: {key} must be a string or a list of strings, got {value!r}")
    return list(value)


def _fill(where: str, section: str, target, given, types: Dict[str, Any]):
    if not isinstance(given, dict):
        raise Error(f"{where}: [{section}] must be a table of keys, got {type(given).__name__}")
    for key, value in given.items():
        if key not in types:
            raise Error(f"{where}: unknown key {section}.{key} (known: {', '.join(sorted(types))})")
        kind = types[key]
        if kind == "strings":
            value = _strings(where, f"{section}.{key}", value)
        elif kind == "range":
            if (not isinstance(value, list) or len(value) != 2 or
                    not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
                raise Error(f"{where}: {section}.{key} must be [lo, hi], two numbers in [0, 1], got {value!r}")
            lo, hi = float(value[0]), float(value[1])
            if not (0 <= lo <= hi <= 1):
                raise Error(f"{where}: {section}.{key} must satisfy 0 <= lo <= hi <= 1, got {value!r}")
            value = (lo, hi)
        else:
            value = _expect(where, f"{section}.{key}", value, kind[0], kind[1])
        setattr(target, key, value)
    return target


def parse_config(data: dict, source: str = "config", base_dir: Optional[str] = None) -> StudyConfig:
    """A StudyConfig from a dict (a parsed YAML/TOML file); relative paths are taken from base_dir."""
    where = source
    if not isinstance(data, dict):
        raise Error(f"{where}: a study config is a table of keys, got {type(data).__name__}")
    for key in data:
        if key not in _TOP:
            raise Error(f"{where}: unknown key {key!r} (known: {', '.join(sorted(_TOP))})")
    cfg = StudyConfig(source=source, raw=json.loads(json.dumps(data, default=str)))
    base = Path(base_dir) if base_dir else Path.cwd()

    def resolve(p: str) -> str:
        if not p or re.match(r"^[a-z]+://", p):
            return p
        return str((base / os.path.expanduser(p)).resolve()) if not os.path.isabs(p) else p

    if "output" not in data:
        raise Error(f"{where}: no output folder (output = \"runs/my-study\")")
    cfg.output = resolve(_expect(where, "output", data["output"], str, "a folder path"))
    cfg.seed = _expect(where, "seed", data.get("seed", 0), int, "an integer")
    if cfg.seed < 0:
        raise Error(f"{where}: seed must be >= 0, got {cfg.seed}")
    cfg.workers = _expect(where, "workers", data.get("workers", cfg.workers), int, "an integer >= 1")
    if cfg.workers < 1:
        raise Error(f"{where}: workers must be >= 1, got {cfg.workers}")
    cfg.ray_task_retries = _expect(where, "ray_task_retries", data.get("ray_task_retries", 3), int, "an integer")
    cfg.outcome = _expect(where, "outcome", data.get("outcome", ""), str, "an outcome spec string")
    if cfg.outcome in ("boxed",):
        cfg.outcome = ""
    cfg.base = _expect(where, "base", data.get("base", "any"), str, "any, correct or incorrect")
    if cfg.base not in ("any", "correct", "incorrect"):
        raise Error(f"{where}: base must be any, correct or incorrect, got {cfg.base!r}")

    # problems
    if "problems" not in data:
        raise Error(f"{where}: no [problems] (problems.source = \"problems.jsonl\")")
    problems = data["problems"]
    if isinstance(problems, str):
        problems = {"source": problems}
    _fill(where, "problems", cfg.problems, problems, {
        "source": (str, "a path"), "format": (str, "auto|jsonl|parquet|hf|math"), "split": (str, "a split name"),
        "problem_field": (str, "a field name"), "answer_field": (str, "a field name"),
        "solution_field": (str, "a field name"), "base_solution_field": (str, "a field name"),
        "levels": "strings", "types": "strings", "offset": (int, "an integer >= 0"), "limit": (int, "an integer >= 0")})
    if not cfg.problems.source:
        raise Error(f"{where}: problems.source is missing")
    cfg.problems.source = resolve(cfg.problems.source)
    if cfg.problems.format not in ("auto", "jsonl", "parquet", "hf", "math"):
        raise Error(f"{where}: problems.format must be auto, jsonl, parquet, hf or math, got {cfg.problems.format!r}")
    if cfg.problems.offset < 0 or cfg.problems.limit < 0:
        raise Error(f"{where}: problems.offset and problems.limit must be >= 0")

    # models
    models = data.get("models")
    if isinstance(models, dict):
        models = [models]
    if not models or not isinstance(models, list):
        raise Error(f"{where}: no models ([[models]] with a name and a path and/or endpoints)")
    names = set()
    for k, given in enumerate(models):
        spec = _fill(where, f"models[{k}]", ModelSpec(), given, {
            "name": (str, "a folder name"), "path": (str, "a checkpoint folder"), "endpoints": "strings",
            "server_model": (str, "a model name"), "tokenizer": (str, "a path"),
            "concurrency": (int, "an integer >= 1"), "prompt_mode": (str, "ids or text"),
            "max_retries": (int, "an integer >= 0"), "timeout_seconds": (float, "seconds"),
            "device": (str, "a device"), "dtype": (str, "a dtype name")})
        spec.path, spec.tokenizer = resolve(spec.path), resolve(spec.tokenizer)
        if not spec.name:
            spec.name = Path(spec.path).name if spec.path else (spec.server_model.split("/")[-1] or "")
        if not spec.name or not re.fullmatch(r"[A-Za-z0-9._+-]+", spec.name) or spec.name.startswith("."):
            raise Error(f"{where}: models[{k}].name must be a plain folder name (letters, digits, . _ + -), "
                        f"got {spec.name!r}")
        if spec.name in names:
            raise Error(f"{where}: two models are named {spec.name!r}")
        names.add(spec.name)
        if not spec.path and not spec.endpoints:
            raise Error(f"{where}: models[{k}] ({spec.name}) needs path (a local checkpoint) or endpoints")
        if spec.endpoints and not (spec.tokenizer or spec.path):
            raise Error(f"{where}: models[{k}] ({spec.name}): endpoints need tokenizer (tokenizer.json or the "
                        "checkpoint folder) for the token-id prompts")
        if spec.concurrency < 1 or spec.max_retries < 0 or not spec.timeout_seconds > 0:
            raise Error(f"{where}: models[{k}] ({spec.name}): concurrency >= 1, max_retries >= 0 and "
                        "timeout_seconds > 0 are required")
        if spec.prompt_mode not in ("ids", "text"):
            raise Error(f"{where}: models[{k}].prompt_mode must be ids or text, got {spec.prompt_mode!r}")
        cfg.models.append(spec)

    # methods
    methods = data.get("methods", {"resampling": {}})
    if isinstance(methods, list):
        methods = {m: {} for m in _strings(where, "methods", methods)}
    if not isinstance(methods, dict):
        raise Error(f"{where}: methods must be a table of method name -> options")
    known = [info.name for info in _C.methods()]
    from .white_box import checked_options  # the registry's own check of names and types
    for name, options in methods.items():
        if name not in known:
            raise Error(f"{where}: unknown method {name!r} (registered: {', '.join(known)})")
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise Error(f"{where}: methods.{name} must be a table of options, got {options!r}")
        try:
            cfg.methods[name] = checked_options(name, dict(options))
        except Error as e:
            raise Error(f"{where}: methods.{name}: {e}") from None
    if "resampling" not in cfg.methods:
        raise Error(f"{where}: methods must include resampling (it makes each problem's base trace and rollouts)")
    for name in cfg.methods:
        if "model" in _C.method_info(name).needs and not all(m.path for m in cfg.models):
            lacking = [m.name for m in cfg.models if not m.path]
            raise Error(f"{where}: method {name} reads the model's attention: models {', '.join(lacking)} "
                        "need path (a local checkpoint)")

    # selection
    if "selection" in data:
        _fill(where, "selection", cfg.selection, data["selection"], {
            "probe": (int, "an integer >= 0"), "accuracy": "range", "max_tokens": (int, "an integer >= 0")})
        if cfg.selection.probe < 0 or cfg.selection.max_tokens < 0:
            raise Error(f"{where}: selection.probe and selection.max_tokens must be >= 0")
    return cfg


def load_config(config) -> StudyConfig:
    """A StudyConfig from a .toml / .yaml file, a dict, or a StudyConfig (returned as is)."""
    if isinstance(config, StudyConfig):
        return config
    if isinstance(config, dict):
        return parse_config(config)
    path = os.fspath(config)
    return parse_config(_read_file(path), source=path, base_dir=str(Path(path).resolve().parent))


# ---------------------------------------------------------------------------- problems


def _hf_rows(folder: Path, split: str, where: str) -> List[dict]:
    """The rows of a folder written by `datasets` save_to_disk (a Dataset or a DatasetDict): Arrow stream
    files listed in state.json, read with pyarrow (no `datasets` import needed)."""
    import pyarrow as pa

    if (folder / "dataset_dict.json").is_file():
        with open(folder / "dataset_dict.json", encoding="utf-8") as handle:
            splits = json.load(handle).get("splits", [])
        if not split:
            if len(splits) == 1:
                split = splits[0]
            elif "test" in splits:
                split = "test"
            else:
                raise Error(f"{where}: a DatasetDict with splits {splits}: set problems.split")
        if split not in splits:
            raise Error(f"{where}: no split {split!r} (splits: {', '.join(splits)})")
        folder = folder / split
    state_path = folder / "state.json"
    if not state_path.is_file():
        raise Error(f"{where}: not a folder saved by datasets' save_to_disk (no state.json or dataset_dict.json)")
    with open(state_path, encoding="utf-8") as handle:
        state = json.load(handle)
    rows: List[dict] = []
    for entry in state.get("_data_files", []):
        path = folder / entry["filename"]
        try:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_stream(source).read_all()
        except (OSError, pa.ArrowInvalid) as e:
            raise Error(f"{path}: not a readable Arrow file: {e}") from e
        rows.extend(table.to_pylist())
    indices = state.get("_indices_data_files")
    if indices:
        raise Error(f"{where}: a dataset saved with an indices mapping (after select/shuffle without "
                    "flatten_indices()) is not supported: save it after .flatten_indices()")
    return rows


def _math_rows(folder: Path, split: str, where: str) -> List[dict]:
    """A MATH-style folder: <folder>[/<split>]/<type>/<n>.json, each {"problem", "level", "type", "solution"}."""
    if split:
        folder = folder / split
    elif (folder / "test").is_dir() and not any(p.suffix == ".json" for p in folder.glob("*/*.json")):
        folder = folder / "test"
    files = sorted(folder.glob("*/*.json"), key=lambda p: (p.parent.name, int(p.stem) if p.stem.isdigit() else 0,
                                                          p.stem))
    if not files:
        raise Error(f"{where}: no <type>/<n>.json files (a MATH-style folder)")
    rows = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as handle:
                row = json.load(handle)
        except (OSError, ValueError) as e:
            raise Error(f"{path}: not a JSON problem file: {e}") from e
        if not isinstance(row, dict):
            raise Error(f"{path}: a problem file holds one JSON object")
        row.setdefault("type", path.parent.name)
        row.setdefault("id", f"{path.parent.name}/{path.stem}")
        rows.append(row)
    return rows


def _source_rows(src: ProblemSource, where: str) -> List[dict]:
    path = Path(src.source)
    fmt = src.format
    if fmt == "auto":
        if path.is_dir():
            fmt = "hf" if ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file()) else "math"
        elif path.suffix.lower() in (".jsonl", ".json"):
            fmt = "jsonl"
        elif path.suffix.lower() == ".parquet":
            fmt = "parquet"
        elif not path.exists():
            raise Error(f"{where}: problems.source {src.source}: no such file or folder")
        else:
            raise Error(f"{where}: problems.source {src.source}: cannot tell its format; set problems.format")
    if not path.exists():
        raise Error(f"{where}: problems.source {src.source}: no such file or folder")
    if fmt == "jsonl":
        rows = []
        with open(path, encoding="utf-8") as handle:
            for n, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    raise Error(f"{path}:{n}: not a JSON line: {e}") from e
                if not isinstance(row, dict):
                    raise Error(f"{path}:{n}: each line is one JSON object (a problem)")
                rows.append(row)
        return rows
    if fmt == "parquet":
        import pyarrow.parquet as pq
        try:
            return pq.read_table(str(path)).to_pylist()
        except Exception as e:
            raise Error(f"{path}: not a readable Parquet file: {e}") from e
    if fmt == "hf":
        return _hf_rows(path, src.split, f"{path}")
    return _math_rows(path, src.split, f"{path}")


_SCENARIO_KEYS = {"system_prompt", "user_prompt", "conversation_history"}


def load_problems(src: ProblemSource, where: str = "config") -> List[dict]:
    """The problems of a source, filtered and cut: each {"problem", "gt_answer", "level", "type", "id",
    "base_solution" (or None), "scenario" (a scenario dict, or None)} in the source's order."""
    out = []
    for n, row in enumerate(_source_rows(src, where)):
        label = f"{src.source} row {n}"
        if _SCENARIO_KEYS & set(row) and src.problem_field not in row:
            problem = {"problem": "", "scenario": row, "gt_answer": str(row.get("target", "") or "")}
        else:
            text = row.get(src.problem_field)
            if not isinstance(text, str) or not text.strip():
                raise Error(f"{label}: no problem text in field {src.problem_field!r} (fields: {', '.join(row)})")
            answer = row.get(src.answer_field)
            if answer is None and src.answer_field == "gt_answer":
                answer = row.get("answer")
            if answer is None and isinstance(row.get(src.solution_field), str):
                answer = _C.extract_boxed(row[src.solution_field]) or None
            problem = {"problem": text, "scenario": None, "gt_answer": "" if answer is None else str(answer)}
        level, kind = row.get("level", ""), row.get("type", "")
        if src.levels and str(level) not in src.levels:
            continue
        if src.types and str(kind) not in src.types:
            continue
        base = row.get(src.base_solution_field)
        if base is not None and not isinstance(base, str):
            raise Error(f"{label}: {src.base_solution_field} must be a string")
        problem.update(level="" if level is None else str(level), type="" if kind is None else str(kind),
                       id=str(row.get("id", row.get("unique_id", n))), base_solution=base or None)
        out.append(problem)
    out = out[src.offset:]
    if src.limit:
        out = out[:src.limit]
    if not out:
        raise Error(f"{where}: problems.source {src.source} gives no problems after the filters")
    return out

