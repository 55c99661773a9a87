"""Studies: many analysed traces read as one table, and the paper's corpus-level figures from it
(docs/studies.md). The table and every aggregate are computed in C++ (anchors/core/study_table.h,
study_aggregates.h); this module turns them into pandas DataFrames, Parquet files and matplotlib figures.

    >>> import thought_anchors as ta
    >>> study = ta.Study.from_reference("../shared/data/reference")     # the authors' folders, or ours
    >>> study.table()                                   # one row per sentence, every score
    >>> study.by_tag("counterfactual_importance_accuracy")   # mean per function tag, bootstrap 95 % CI
    >>> study.plot_by_tag("counterfactual_importance_accuracy")

pandas (and pyarrow for Parquet) are needed: `pip install "thought-anchors[study]"`.
"""

from __future__ import annotations

import math
import os

from . import _C
from ._C import Error


def _pandas():
    try:
        import pandas
    except ImportError as e:  # pragma: no cover - the test suite installs pandas
        raise Error('ta.Study needs pandas: pip install "thought-anchors[study]"') from e
    return pandas


class Study:
    """The analysed traces of a study as one table (one row per sentence) and its aggregates; or a study to
    run from a config.

    Build one with Study.from_reference(root) / Study.from_folders(root) (every folder under root with a
    result.json of this library, or the authors' layout: <model>/<kind>_base_solution/problem_<id>/), or
    Study.from_results([...]) from AnalysisResult objects; or Study(config) with a config file (YAML or TOML)
    or dict (docs/studies.md "Running a study"), then .run(): the table is then read from its output folder.
    """

    def __init__(self, table_or_config, root: str | None = None):
        self._config = None
        if isinstance(table_or_config, _C.StudyTable):
            self._loaded = table_or_config
            self._root = root
        else:
            from .study_config import load_config
            self._config = load_config(table_or_config)
            self._loaded = None
            self._root = self._config.output

    @property
    def _table(self) -> "_C.StudyTable":
        """The table; a config's study reads its output folder on first use (after .run())."""
        if self._loaded is None:
            if not os.path.isdir(self._root):
                raise Error(f"{self._root}: the study has not run yet (no output folder): call .run() first")
            self._loaded = _C.study_table_from_folders(self._root)
        return self._loaded

    @property
    def config(self):
        """The StudyConfig of a study made from a config (None otherwise)."""
        return self._config

    def run(self, *, ray: bool = False, address: str | None = None, new_run: bool = False,
            progress: bool = True) -> dict:
        """Run or resume the study of the config: every (model, problem) unit, in this process (a thread pool of
        `workers`) or as Ray tasks (ray=True: a local Ray instance; address: a running cluster). A re-run
        resumes; a changed setting that would change finished results is a ta.Error unless new_run=True
        (the old folder is kept beside it). progress: a live line on stderr (progress.json is always written).
        Returns the final progress (units done / skipped / failed, rollouts, rate); ta.Error when units
        failed (the next run retries them)."""
        if self._config is None:
            raise Error("run() needs a study made from a config: ta.Study('study.toml') or ta.Study({...})")
        from .study_runner import run_study
        snapshot = run_study(self._config, ray=ray, address=address, new_run=new_run, progress=progress)
        self._loaded = None  # read the folder afresh
        return snapshot

    def progress(self) -> dict | None:
        """The study folder's progress.json (None before the first run): poll it from a notebook while a run
        goes on elsewhere."""
        path = os.path.join(self._root or "", "progress.json")
        if not self._root or not os.path.isfile(path):
            return None
        import json
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)

    @classmethod
    def from_folders(cls, root: str | os.PathLike) -> "Study":
        """Every analysed trace under root, in sorted path order (ta.Error naming the folder otherwise)."""
        return cls(_C.study_table_from_folders(os.fspath(root)), os.fspath(root))

    # The authors' released folders and ours read the same way.
    from_reference = from_folders

    @classmethod
    def from_results(cls, results, *, model: str = "") -> "Study":
        """A study of AnalysisResult objects (e.g. from ta.analyze), all of one model."""
        table = _C.StudyTable()
        for k, r in enumerate(results):
            table.append(r, model=model, source=r.trace.metadata.get("problem_id", f"result_{k}"))
        return cls(table)

    def __len__(self) -> int:
        return len(self._table)

    @property
    def score_columns(self) -> list:
        """The score columns, "<method>.<series>"."""
        return list(self._table.score_columns)

    def table(self):
        """A pandas DataFrame, one row per sentence: model, problem, base, level, type, sentence, position
        (sentence / (S - 1)), tag (the first function tag), tags, text, source, then one column per score
        ("<method>.<series>", NaN where a trace has none)."""
        return _pandas().DataFrame(self._table.columns())

    def to_parquet(self, path: str | os.PathLike) -> None:
        """Writes table() as a Parquet file (needs pyarrow)."""
        self.table().to_parquet(os.fspath(path), index=False)

    def by(self, column: str, score: str, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
           debias_position: bool = False):
        """Mean of `score` (a full column name or a series name) per value of `column` (tag, level, type,
        model, base), with a bootstrap percentile interval over problems: a DataFrame with columns
        column, sentences, problems, mean, ci_low, ci_high. debias_position: means of the residuals from a
        least-squares line score ~ position (docs/studies.md has every definition)."""
        rows = _C.study_mean_by(self._table, score, column, resamples=resamples, confidence=confidence,
                                seed=seed, debias_position=debias_position)
        return _pandas().DataFrame(rows, columns=[column, "sentences", "problems", "mean", "ci_low", "ci_high"])

    def by_tag(self, score: str, **options):
        """by("tag", score, ...): the paper's importance by function tag (a sentence counts under its first tag)."""
        return self.by("tag", score, **options)

    def agreement(self, score_a: str, score_b: str, *, k: int = 5):
        """Per trace: Spearman correlation of two scores and the overlap of their top-k sentences."""
        rows = _C.study_method_agreement(self._table, score_a, score_b, k)
        return _pandas().DataFrame(rows, columns=["source", "model", "problem", "base", "sentences", "spearman",
                                                  "top_k_overlap"])

    def receiver_head_reliability(self, *, splits: int = 100, seed: int = 0, include_layer0: bool = False) -> dict:
        """Split-half reliability of the receiver heads across the study's traces: the traces' per-head kurtosis
        (from ta.ReceiverHeads) split in random halves, the halves' per-head means correlated. A dict: traces,
        heads, mean_r (over splits), spearman_brown (2r / (1 + r)), split_r (docs/studies.md)."""
        return dict(_C.study_receiver_head_reliability(self._table, splits=splits, seed=seed,
                                                       include_layer0=include_layer0))

    def save_report(self, out_dir: str | os.PathLike, *, title: str = "", score: str = "", resamples: int = 1000,
                    seed: int = 0) -> str:
        """Writes the study's HTML index (out_dir/index.html: a sortable row per trace linking to its own report,
        the by-tag figures inline) and returns its path. Needs a study read from folders (from_folders /
        from_reference): the trace reports are made from them."""
        if self._root is None:
            raise Error("save_report needs a study read from folders (Study.from_folders(root)); "
                        "save the results into folders first")
        written = _C.write_study_report(self._root, os.fspath(out_dir), title=title, score=score,
                                        resamples=resamples, seed=seed)
        return written["index"]

    def plot_by_tag(self, score: str, *, ax=None, **options):
        """A bar chart of by_tag(score, **options) with its intervals; returns the matplotlib Figure."""
        import matplotlib.pyplot as plt

        frame = self.by_tag(score, **options)
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 3.2))
        else:
            fig = ax.figure
        means = frame["mean"].tolist()
        low = [m - lo if not math.isnan(lo) else 0.0 for m, lo in zip(means, frame["ci_low"])]
        high = [hi - m if not math.isnan(hi) else 0.0 for m, hi in zip(means, frame["ci_high"])]
        ax.bar(range(len(frame)), means, yerr=[low, high], capsize=3, color="#4c78a8")
        ax.set_xticks(range(len(frame)))
        ax.set_xticklabels([t.replace("_", "\n") for t in frame["tag"]], fontsize=7)
        column = self._table.score_column(score)
        debiased = " (position-debiased)" if options.get("debias_position") else ""
        ax.set_ylabel(column.split(".", 1)[-1] + debiased, fontsize=8)
        ax.set_title(f"{column} by function tag: mean, {int(100 * options.get('confidence', 0.95))} % bootstrap "
                     f"interval over problems", fontsize=8)
        ax.axhline(0, color="black", linewidth=0.5)
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:
        problems = len({(m, p) for m, p in zip(*(self._table.columns()[c] for c in ("model", "problem")))})
        return f"Study({problems} problems, {len(self)} sentences, {len(self.score_columns)} score columns)"
