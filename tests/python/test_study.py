"""ta.Study: the study table and its aggregates against references computed here with pandas.

The table is read from the four bundled traces of the authors (tests/data/reference, two models); every
aggregate is recomputed from the DataFrame with pandas / numpy, the bootstrap with the same draws
(splitmix64, as docs/studies.md defines them), and must agree.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import thought_anchors as ta  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference"
SCORE = "resampling.counterfactual_importance_accuracy"
MASK = (1 << 64) - 1


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def reference_by(frame: pd.DataFrame, column: str, score: str, *, resamples: int, confidence: float, seed: int,
                 debias: bool) -> pd.DataFrame:
    """docs/studies.md's definition, written with pandas."""
    f = frame[list(dict.fromkeys(["model", "problem", "position", column, score]))].copy()
    if debias:
        ok = f[score].notna()
        slope, intercept = np.polyfit(f.loc[ok, "position"], f.loc[ok, score], 1)
        f[score] = f[score] - (intercept + slope * f["position"])
    f = f[f[score].notna() & (f[column] != "")]
    clusters = sorted(set(zip(f["model"], f["problem"])))
    f["cluster"] = [clusters.index(key) for key in zip(f["model"], f["problem"])]
    C = len(clusters)
    draws = [[splitmix64(seed + b * C + k) % C for k in range(C)] for b in range(resamples)]
    names = [t for t in ta.function_tag_names() if t in set(f[column])] if column == "tag" else []
    names += sorted(set(f[column]) - set(names))
    rows = []
    for name in names:
        g = f[f[column] == name]
        per_cluster = g.groupby("cluster")[score].agg(["sum", "count"])
        stats = []
        for draw in draws:
            picked = per_cluster.reindex(draw).dropna()
            if picked["count"].sum() > 0:
                stats.append(picked["sum"].sum() / picked["count"].sum())
        q = [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100]
        low, high = np.percentile(stats, q) if stats else (math.nan, math.nan)
        rows.append({column: name, "sentences": len(g), "problems": g["cluster"].nunique(), "mean": g[score].mean(),
                     "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def study():
    return ta.Study.from_reference(REFERENCE)


def test_the_table_has_every_sentence_and_score(study):
    table = study.table()
    traces = [ta.import_reference(str(d)) for d in sorted(REFERENCE.glob("*/*_base_solution/problem_*"))]
    assert len(table) == sum(len(r.trace.sentences) for r in traces) == len(study)
    assert list(table.columns[:11]) == ["model", "problem", "base", "level", "type", "sentence", "position", "tag",
                                        "tags", "text", "source"]
    assert set(table["model"]) == {"deepseek-r1-distill-qwen-14b", "deepseek-r1-distill-llama-8b"}
    assert set(table["base"]) == {"correct", "incorrect"}
    # Row by row the sentences, tags and scores of the imported traces, in the same order.
    rows = iter(table.to_dict("records"))
    for r in traces:
        a = r.attribution("resampling")
        for i, s in enumerate(r.trace.sentences):
            row = next(rows)
            assert row["text"] == s.text and row["sentence"] == i and row["tag"] == (s.tags[0] if s.tags else "")
            assert row["position"] == i / (len(r.trace.sentences) - 1)
            got, want = row[SCORE], a.score(SCORE.split(".")[1])[i].item()
            assert (math.isnan(got) and math.isnan(want)) or got == want
    assert study.score_columns == [c for c in table.columns if "." in c]


def test_from_results_reads_the_same_sentences(study):
    results = [ta.import_reference(str(d)) for d in sorted(REFERENCE.glob("*/*_base_solution/problem_*"))]
    mine = ta.Study.from_results(results, model="m").table()
    table = study.table()
    assert len(mine) == len(table) and set(mine["model"]) == {"m"}
    for column in ("problem", "sentence", "position", "tag", "text"):
        assert mine[column].tolist() == table[column].tolist(), column
    assert mine[SCORE].equals(table[SCORE])


def test_parquet_round_trip(study, tmp_path):
    study.to_parquet(tmp_path / "study.parquet")
    back = pd.read_parquet(tmp_path / "study.parquet")
    pd.testing.assert_frame_equal(back, study.table())


@pytest.mark.parametrize("column,debias", [("tag", False), ("tag", True), ("type", False), ("model", False)])
def test_aggregates_equal_the_pandas_reference(study, column, debias):
    options = dict(resamples=200, confidence=0.9, seed=3)
    got = study.by(column, SCORE, debias_position=debias, **options)
    want = reference_by(study.table(), column, SCORE, debias=debias, **options)
    assert list(got[column]) == list(want[column])
    assert list(got["sentences"]) == list(want["sentences"]) and list(got["problems"]) == list(want["problems"])
    for name in ("mean", "ci_low", "ci_high"):
        assert np.allclose(got[name], want[name], rtol=0, atol=1e-12, equal_nan=True), name
    assert (got["ci_low"] <= got["mean"] + 1e-12).all() and (got["mean"] <= got["ci_high"] + 1e-12).all()


def test_by_tag_table_and_figure(study, tmp_path):
    frame = study.by_tag("counterfactual_importance_accuracy")  # a series name is enough when unique
    assert list(frame.columns) == ["tag", "sentences", "problems", "mean", "ci_low", "ci_high"]
    assert frame["tag"].tolist() == [t for t in ta.function_tag_names() if t in set(frame["tag"])]
    assert frame["sentences"].sum() == study.table()[SCORE].notna().sum()
    fig = study.plot_by_tag("counterfactual_importance_accuracy")
    assert len(fig.axes[0].patches) == len(frame)
    fig.savefig(tmp_path / "by_tag.svg")
    assert (tmp_path / "by_tag.svg").stat().st_size > 1000


def test_method_agreement_equals_pandas(study):
    a, b = SCORE, "resampling.resampling_importance_accuracy"
    got = study.agreement(a, b, k=5)
    table = study.table()
    assert len(got) == table["source"].nunique()
    for row in got.itertuples(index=False):
        t = table[(table["source"] == row.source)][[a, b]].dropna()
        assert row.sentences == len(t)
        assert math.isclose(row.spearman, t[a].rank().corr(t[b].rank()), abs_tol=1e-12)
        top_a = set(t[a].sort_values(ascending=False, kind="stable").index[:5])
        top_b = set(t[b].sort_values(ascending=False, kind="stable").index[:5])
        assert row.top_k_overlap == len(top_a & top_b) / 5


def test_clear_errors(study, tmp_path):
    with pytest.raises(ta.Error, match="no such folder"):
        ta.Study.from_reference(tmp_path / "absent")
    with pytest.raises(ta.Error, match="no analysed trace"):
        ta.Study.from_reference(tmp_path)
    with pytest.raises(ta.Error, match="no score"):
        study.by_tag("no_such_score")
    with pytest.raises(ta.Error, match="cannot group"):
        study.by("colour", SCORE)
    broken = tmp_path / "m" / "correct_base_solution" / "problem_1"
    broken.mkdir(parents=True)
    (broken / "result.json").write_text(json.dumps({"format": "nonsense"}))
    with pytest.raises(ta.Error, match="result.json"):
        ta.Study.from_folders(tmp_path)


def test_receiver_head_reliability_equals_numpy_on_the_embedded_model():
    # Six traces the embedded model wrote for its demo problem, each through ta.ReceiverHeads.
    model = ta.load_embedded_model()
    problem = ta.embedded_problem()["problem"]
    prompt = ta.render_prompt(model.tokenizer, "raw", problem).text
    samples = model.sample(model.tokenizer.encode(prompt).ids, 6, max_new_tokens=160, seed=11, temperature=1.0)
    results = []
    for s in samples:
        trace = ta.Trace.from_text(s.text, prompt=prompt)
        assert len(trace.sentences) >= 6, s.text
        results.append(ta.ReceiverHeads(top_k=4).run(model, trace))
    study = ta.Study.from_results(results)
    got = study.receiver_head_reliability(splits=25, seed=5)

    # The reference: the same shuffles (docs/studies.md), numpy means and Pearson r.
    kurtosis = [r.attribution("receiver_heads").matrix("head_kurtosis").numpy()[1:].ravel() for r in results]
    n = len(kurtosis)
    rs = []
    for split in range(25):
        order = list(range(n))
        for k in range(n - 1, 0, -1):
            j = splitmix64(5 + split * n + k) % (k + 1)
            order[k], order[j] = order[j], order[k]
        a = np.nanmean([kurtosis[t] for t in order[: n // 2]], axis=0)
        b = np.nanmean([kurtosis[t] for t in order[n // 2:]], axis=0)
        ok = np.isfinite(a) & np.isfinite(b)
        rs.append(np.corrcoef(a[ok], b[ok])[0, 1])
    assert got["traces"] == n
    assert np.allclose(got["split_r"], rs, rtol=0, atol=1e-12)
    assert math.isclose(got["mean_r"], float(np.mean(rs)), abs_tol=1e-12)
    assert math.isclose(got["spearman_brown"], 2 * got["mean_r"] / (1 + got["mean_r"]), abs_tol=1e-15)
    with pytest.raises(ta.Error, match="at least 4 traces"):
        ta.Study.from_results(results[:3]).receiver_head_reliability()


def test_study_report_opens_in_chromium(study, tmp_path, anchors_cli):
    from test_report import Dom, dump_dom

    out = tmp_path / "report"
    index = Path(study.save_report(out, resamples=100))
    assert index == out / "index.html"
    table = study.table()
    sources = list(dict.fromkeys(table["source"]))
    assert sorted(p.name for p in (out / "traces").iterdir()) == [f"trace_{k}.html" for k in range(len(sources))]

    # Sorted on load by #sort=-COLUMN: the rows in descending order of the trace's mean score.
    column = SCORE
    dom = Dom(dump_dom(index, tmp_path, f"sort=-{column}"))
    assert dom.body.get("data-rendered") == "ok", dom.body
    assert not dom.body.get("data-errors")
    assert dom.body.get("data-rows") == str(len(sources))
    assert dom.body.get("data-sorted") == "-" + column
    means = table.groupby("source", sort=False)[column].mean()
    want = [table.loc[table["source"] == s, "problem"].iloc[0] for s in means.sort_values(ascending=False).index]
    body = dom.find(tag="tbody")[0]
    links = dom.inside(body, "a")
    assert [dom.text[a] for a in links] == want  # every problem, in score order, each linking to its report
    for a in links:
        assert (out / dom.elements[a][1]["href"]).exists()
    # The by-tag figures: plain and position-debiased, one bar per tag.
    tags = study.by_tag(column)
    svgs = dom.find(tag="svg")
    assert len(svgs) == 2
    assert all(len(dom.inside(s, "rect", "bar")) == len(tags) for s in svgs)
    # The same page from the CLI.
    done = subprocess.run([anchors_cli, "study-report", str(REFERENCE), "-o", str(tmp_path / "cli"),
                           "--resamples", "100"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cli" / "index.html").read_text() == index.read_text()
    with pytest.raises(ta.Error, match="read from folders"):
        ta.Study.from_results([ta.import_reference(sources[0])]).save_report(tmp_path / "x")
