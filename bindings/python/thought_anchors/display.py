"""Notebook display and matplotlib plots for results (no algorithms here).

``AnalysisResult`` renders inline in Jupyter as a compact table (``_repr_html_``:
small, so notebooks that echo results stay light); ``result.show()`` displays the
full interactive report (rendered in C++ by ``_C.render_report_html``, the same
page as ``anchors report``) in an isolated ``<iframe srcdoc>``, and
``result.save_report(path)`` writes it to a file (docs/report.md).
``result.plot(score=...)`` draws per-sentence scores and ``result.plot_matrix(name)``
a sentence-by-sentence heatmap with matplotlib.
"""

from __future__ import annotations

import html
import math
from typing import Optional, Tuple

from . import _C

def _pick_score(result, method: Optional[str], score: Optional[str]) -> Tuple[str, str]:
    """(method, score) to show: the caller's, else the method's headline (the C++ choose_score rule)."""
    method, score = _C.choose_score(result, method or "", score or "")
    if not method:
        raise _C.Error("result has no per-sentence scores")
    return method, score


def _finite(values):
    return [v for v in values if not math.isnan(v)]


def result_html(result, method: Optional[str] = None, score: Optional[str] = None, top: int = 5) -> str:
    """A self-contained HTML table: each sentence shaded by its score, with its tags."""
    trace = result.trace
    sentences = trace.sentences
    try:
        method, score = _pick_score(result, method, score)
        values = result.attribution(method).score(score).tolist()
    except _C.Error:
        method, score, values = None, None, [float("nan")] * len(sentences)
    finite = _finite(values)
    scale = max((abs(v) for v in finite), default=0.0) or 1.0
    ranked = sorted((i for i, v in enumerate(values) if not math.isnan(v)), key=lambda i: -values[i])[:top]
    rows = []
    for s, v in zip(sentences, values):
        alpha = 0.0 if math.isnan(v) else min(1.0, abs(v) / scale)
        colour = f"rgba(220,60,40,{alpha:.3f})" if v >= 0 or math.isnan(v) else f"rgba(40,90,220,{alpha:.3f})"
        mark = " &#9733;" if s.index in ranked else ""
        shown = "" if math.isnan(v) else f"{v:.3f}"
        rows.append(
            f"<tr><td style='text-align:right;color:#666'>{s.index}{mark}</td>"
            f"<td style='text-align:right;font-family:monospace'>{shown}</td>"
            f"<td style='color:#555'>{html.escape(', '.join(s.tags))}</td>"
            f"<td style='background:{colour}'>{html.escape(s.text)}</td></tr>"
        )
    header = (
        f"<div><b>{len(sentences)} sentences</b>, answer <code>{html.escape(trace.answer)}</code>; "
        f"methods: {html.escape(', '.join(result.methods)) or 'none'}; "
        + (f"shading: <code>{html.escape(method)}.{html.escape(score)}</code> (&#9733; top {top})" if score else "no scores")
        + "; <code>.show()</code> opens the interactive report</div>"
    )
    return (
        "<div class='thought-anchors'>" + header + "<table style='border-collapse:collapse;font-size:90%'>"
        "<tr><th>#</th><th>score</th><th>tags</th><th style='text-align:left'>sentence</th></tr>"
        + "".join(rows)
        + "</table></div>"
    )


def report_iframe(result, height: int = 820, **options) -> str:
    """The report as an ``<iframe srcdoc=...>`` element: its script and styles run
    isolated from the notebook page (sandboxed: scripts only, no same-origin access)."""
    page = _C.render_report_html(result, **options)
    title = html.escape(options.get("title") or "thought-anchors report", quote=True)
    return (
        f'<iframe srcdoc="{html.escape(page, quote=True)}" title="{title}" sandbox="allow-scripts" '
        f'style="width:100%;height:{int(height)}px;border:1px solid #d0d7de;border-radius:8px;background:#fff">'
        "</iframe>"
    )


def show(
    result,
    method: Optional[str] = None,
    score: Optional[str] = None,
    top: int = 10,
    alternatives=None,
    title: Optional[str] = None,
    height: int = 820,
):
    """Display the interactive report in a notebook (IPython); print a text table elsewhere.

    alternatives: resampled sentences to show per sentence: a rollout problem folder, a
    reference folder / chunks_resampled.json, or a dict {sentence index: [text, ...]}.
    """
    try:
        from IPython.display import HTML, display  # type: ignore
    except ImportError:
        method, score = _pick_score(result, method, score)
        values = result.attribution(method).score(score).tolist()
        for s, v in zip(result.trace.sentences, values):
            print(f"{s.index:4d} {v:8.3f}  {','.join(s.tags):24s} {s.text[:90]}")
        return
    options = dict(method=method or "", score=score or "", top=top, title=title or "")
    display(HTML(report_iframe(result, height=height, alternatives=alternatives, **options)))


def save_report(result, path, alternatives=None, **options) -> None:
    """Write the self-contained HTML report (``anchors report``) to ``path``.

    Options as ``thought_anchors.render_report_html``: title, method, score, top,
    max_alternatives, max_links.
    """
    _C.write_report(result, path, alternatives, **options)


def plot(result, score: Optional[str] = None, method: Optional[str] = None, ax=None):
    """Bar chart of one per-sentence score series; returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    method, score = _pick_score(result, method, score)
    values = result.attribution(method).score(score).tolist()
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, len(values) * 0.08), 3.0))
    ax.bar(range(len(values)), [0.0 if math.isnan(v) else v for v in values], color="#d9452b")
    ax.set_xlabel("sentence")
    ax.set_ylabel(score)
    ax.set_title(f"{method}: {score}")
    return ax


def plot_matrix(result, name: Optional[str] = None, method: Optional[str] = None, ax=None):
    """Heatmap of an S×S sentence matrix (NaN cells blank); returns the Axes."""
    import matplotlib.pyplot as plt

    attributions = [result.attribution(method)] if method else list(result.attributions)
    for a in attributions:
        if (name is None and a.matrices) or (name in a.matrices):
            name = name or sorted(a.matrices)[0]
            matrix = a.matrix(name).numpy()
            if ax is None:
                _, ax = plt.subplots(figsize=(5, 4.5))
            image = ax.imshow(matrix, cmap="RdBu_r", interpolation="nearest")
            ax.figure.colorbar(image, ax=ax)
            ax.set_xlabel("target sentence")
            ax.set_ylabel("source sentence")
            ax.set_title(f"{a.method}: {name}")
            return ax
    raise _C.Error(f"no attribution has a matrix named {name!r}" if name else "result has no matrices")


def install() -> None:
    """Attach the display helpers to the compiled result class."""
    _C.AnalysisResult._repr_html_ = lambda self: result_html(self)
    _C.AnalysisResult.show = show
    _C.AnalysisResult.save_report = save_report
    _C.AnalysisResult.plot = plot
    _C.AnalysisResult.plot_matrix = plot_matrix
