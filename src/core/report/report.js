(function () {
  "use strict";
  var body = document.body;
  var DATA = JSON.parse(document.getElementById("ta-data").textContent);
  var R = DATA.result, TRACE = R.trace, SENTENCES = TRACE.sentences, S = SENTENCES.length;
  var MAX_LINKS = DATA.max_links, TOP_K = DATA.top_anchors;
  var NAN_RGB = [230, 232, 235];

  // ---- small helpers -------------------------------------------------------
  function byId(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  var SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG_NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function num(v) { return typeof v === "number" ? v : NaN; }
  function finite(v) { return typeof v === "number" && isFinite(v); }
  function clamp(x, lo, hi) { return x < lo ? lo : x > hi ? hi : x; }
  function pretty(name) { return String(name).replace(/_/g, " "); }
  function fmt(v) {
    if (!finite(v)) return "\u2013";
    var a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1e4 || a < 1e-3) return v.toExponential(2);
    return String(Number(v.toPrecision(3)));
  }
  function snippet(text, n) {
    var t = String(text).replace(/\s+/g, " ").trim();
    return t.length > n ? t.slice(0, n - 1) + "\u2026" : t;
  }

  // ---- colour scales -------------------------------------------------------
  var SEQ = [[255, 255, 255], [254, 240, 217], [253, 204, 138], [252, 141, 89], [215, 48, 31]];
  var DIV = [[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]];
  function ramp(stops, t) {
    var x = clamp(t, 0, 1) * (stops.length - 1), i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
    var a = stops[i], b = stops[i + 1];
    return [Math.round(a[0] + (b[0] - a[0]) * f), Math.round(a[1] + (b[1] - a[1]) * f), Math.round(a[2] + (b[2] - a[2]) * f)];
  }
  function css(rgb) { return "rgb(" + rgb[0] + "," + rgb[1] + "," + rgb[2] + ")"; }
  function gradient(stops) {
    return "linear-gradient(to right," + stops.map(function (s, i) {
      return css(s) + " " + Math.round(100 * i / (stops.length - 1)) + "%";
    }).join(",") + ")";
  }
  function quantile(sorted, q) {
    if (!sorted.length) return NaN;
    var p = (sorted.length - 1) * q, lo = Math.floor(p), hi = Math.ceil(p);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (p - lo);
  }
  // Diverging (blue-white-red, symmetric around 0) when the values have both
  // signs; sequential (white-red) otherwise. Saturates at quantile q of the
  // magnitudes so one outlier does not wash out the rest.
  function makeScale(values, q) {
    var f = [], mn = Infinity, mx = -Infinity;
    for (var i = 0; i < values.length; ++i) {
      var v = values[i];
      if (finite(v)) { f.push(v); if (v < mn) mn = v; if (v > mx) mx = v; }
    }
    var s = { count: f.length, min: mn, max: mx };
    if (!f.length) {
      s.kind = "empty"; s.lo = NaN; s.hi = NaN; s.stops = SEQ;
      s.rgb = function () { return null; };
    } else if (mn < 0 && mx > 0) {
      var mags = f.map(Math.abs).sort(function (a, b) { return a - b; });
      var m = quantile(mags, q);
      if (!(m > 0)) m = mags[mags.length - 1];
      s.kind = "diverging"; s.lo = -m; s.hi = m; s.stops = DIV;
      s.rgb = function (v) { return finite(v) ? ramp(DIV, (clamp(v / m, -1, 1) + 1) / 2) : null; };
    } else {
      f.sort(function (a, b) { return a - b; });
      var lo = mn >= 0 ? 0 : mn, hi = quantile(f, q);
      if (!(hi > lo)) hi = mx;
      if (!(hi > lo)) hi = lo + 1;
      s.kind = "sequential"; s.lo = lo; s.hi = hi; s.stops = SEQ;
      s.rgb = function (v) { return finite(v) ? ramp(SEQ, (v - lo) / (hi - lo)) : null; };
    }
    s.css = function (v) { var c = s.rgb(v); return c ? css(c) : css(NAN_RGB); };
    return s;
  }
  function legend(scale, small) {
    var box = el("span", "legend" + (small ? " small" : ""));
    if (scale.kind === "empty") { box.textContent = "no values"; return box; }
    box.appendChild(el("span", null, fmt(scale.lo)));
    var bar = el("span", "bar");
    bar.style.background = gradient(scale.stops);
    box.appendChild(bar);
    box.appendChild(el("span", null, (scale.hi < scale.max ? "\u2265 " : "") + fmt(scale.hi)));
    if (!small) {
      box.appendChild(el("span", "nan"));
      box.appendChild(el("span", null, "no value"));
    }
    box.title = scale.kind + " scale; values range " + fmt(scale.min) + " \u2026 " + fmt(scale.max) +
      (scale.kind === "diverging" ? ", centred on 0" : "");
    return box;
  }
  function textColour(rgb) {
    if (!rgb) return "";
    var l = (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255;
    return l < 0.5 ? "#ffffff" : "";
  }

  // ---- the data --------------------------------------------------------------
  var SCORE_INFO = {
    counterfactual_importance_kl: "KL between the answer distributions of rollouts that replaced the sentence with a different one and of those that reached the next one",
    counterfactual_importance_accuracy: "accuracy change when the sentence is replaced by a semantically different one",
    resampling_importance_kl: "KL between the answer distributions of rollouts resampled before and after the sentence",
    resampling_importance_accuracy: "accuracy of rollouts resampled after the sentence minus before it",
    forced_importance_kl: "KL of forced answers before and after the sentence",
    forced_importance_accuracy: "forced-answer accuracy change across the sentence",
    accuracy: "accuracy of the rollouts resampled from before the sentence",
    different_trajectories_fraction: "fraction of resampled rollouts whose first sentence differs in meaning",
    overdeterminedness: "1 \u2212 distinct resampled sentences / rollouts",
    receiver_score: "mean vertical attention score over the receiver heads",
    suppression_effect: "mean log-KL on later sentences when this sentence's keys are masked",
    suppression_effect_centred: "mean of the row-centred suppression matrix below the diagonal",
    attention_received: "vertical score of the layer- and head-mean sentence attention",
    waad: "windowed average attention distance of local heads (mean over the sentence's tokens)",
    fai: "future attention influence of global heads (mean over the sentence's tokens)",
    gamma: "credit weight \u03b3 (mean over the sentence's tokens)",
    preplan_fraction: "fraction of the sentence's tokens that are preplan tokens",
    anchor_fraction: "fraction of the sentence's tokens that are anchor tokens"
  };
  // rows/cols: axis captions; orient: "source_rows" (row = earlier sentence
  // that influences, column = the later one) or "target_rows".
  var MATRIX_INFO = {
    "resampling/sentence_to_sentence": { rows: "source sentence i", cols: "target sentence j", orient: "source_rows",
      desc: "Counterfactual importance: how much more often rollouts that keep sentence i contain sentence j than rollouts that replace it." },
    "attention_suppression/sentence_to_sentence": { rows: "suppressed sentence i", cols: "affected sentence j", orient: "source_rows",
      desc: "Attention suppression: log-KL of sentence j's next-token predictions when nothing may attend to sentence i (each target centred, as published)." },
    "attention_suppression/suppression": { rows: "affected sentence j", cols: "suppressed sentence i", orient: "target_rows",
      desc: "Attention suppression: log-KL at sentence j's tokens with sentence i's keys masked, each row centred (j \u2264 i blank)." },
    "attention_suppression/suppression_raw": { rows: "affected sentence j", cols: "suppressed sentence i", orient: "target_rows",
      desc: "Attention suppression, raw log-KL at sentence j's tokens with sentence i's keys masked (not centred)." },
    "sentence_attention/sentence_attention": { rows: "attending sentence", cols: "attended sentence", orient: "target_rows",
      desc: "Mean attention from the tokens of one sentence to those of an earlier one, averaged over layers and heads." },
    "receiver_heads/head_kurtosis": { rows: "layer", cols: "head", desc: "Kurtosis of each head's vertical attention scores; the receiver heads are the heads with the highest kurtosis." },
    "receiver_heads/receiver_vertical": { rows: "receiver head", cols: "sentence", desc: "Vertical score of each receiver head per sentence: the attention later sentences pay to it." },
    "attention_rhythm/head_span": { rows: "layer (selected)", cols: "head", desc: "Mean attention distance of each head: local heads low, global heads high." },
    "attention_rhythm/token_waad": { rows: "", cols: "token", desc: "Windowed average attention distance of the local heads, per token." },
    "attention_rhythm/token_fai": { rows: "", cols: "token", desc: "Future attention influence of the global heads, per token." },
    "attention_rhythm/token_gamma": { rows: "", cols: "token", desc: "Credit weight \u03b3 per token (preplan and anchor tokens raised)." }
  };

  var series = [];
  var sentenceMatrices = [];
  R.attributions.forEach(function (a) {
    Object.keys(a.scores).forEach(function (name) {
      series.push({ method: a.method, name: name, values: a.scores[name].map(num) });
    });
  });
  series.forEach(function (s) {
    s.scale = makeScale(s.values, 0.95);
    var order = [];
    s.values.forEach(function (v, i) { if (finite(v)) order.push(i); });
    order.sort(function (x, y) { return s.values[y] - s.values[x] || x - y; });
    s.order = order;
    s.rank = {};
    order.forEach(function (i, r) { s.rank[i] = r + 1; });
  });
  function findSeries(method, name) {
    for (var i = 0; i < series.length; ++i) if (series[i].method === method && series[i].name === name) return i;
    return -1;
  }

  // ---- hash: #sentence=3&score=method.name -----------------------------------
  var hash = {};
  (location.hash || "").replace(/^#/, "").split("&").forEach(function (kv) {
    var p = kv.split("=");
    if (p[0]) { try { hash[p[0]] = decodeURIComponent(p.slice(1).join("=")); } catch (e) { hash[p[0]] = ""; } }
  });

  // ---- state and selection -----------------------------------------------------
  var current = -1, pinned = null, shown = null;
  var rows = Array.prototype.slice.call(document.querySelectorAll("#ta-trace .s"));
  var listeners = [];  // called with the shown sentence index
  function showSentence(i) {
    if (i === null || i === undefined || i < 0 || i >= S || i === shown) return;
    if (shown !== null && rows[shown]) rows[shown].classList.remove("cur");
    shown = i;
    if (rows[i]) rows[i].classList.add("cur");
    renderDetail(i);
    listeners.forEach(function (f) { f(i); });
  }
  function pin(i, scroll) {
    if (i === null || i === undefined || i < 0 || i >= S) return;
    if (pinned !== null && rows[pinned]) rows[pinned].classList.remove("pin");
    pinned = i;
    body.dataset.selected = String(i);
    if (rows[i]) rows[i].classList.add("pin");
    shown = null;
    showSentence(i);
    if (scroll && rows[i]) {
      var box = byId("ta-trace"), r = rows[i];
      var top = r.offsetTop - box.offsetTop;
      if (top < box.scrollTop || top + r.offsetHeight > box.scrollTop + box.clientHeight)
        box.scrollTop = Math.max(0, top - box.clientHeight / 3);
    }
  }
  function restore() { if (pinned !== null) showSentence(pinned); }

  // ---- the trace ---------------------------------------------------------------
  rows.forEach(function (row) {
    var i = Number(row.getAttribute("data-i"));
    row.addEventListener("mouseenter", function () { showSentence(i); });
    row.addEventListener("click", function () { pin(i, false); });
  });
  byId("ta-trace").addEventListener("mouseleave", restore);
  function colourTrace() {
    var s = series[current], painted = 0;
    var top = {};
    if (s) s.order.slice(0, TOP_K).forEach(function (i) { top[i] = true; });
    rows.forEach(function (row) {
      var i = Number(row.getAttribute("data-i")), sx = row.querySelector(".sx");
      var v = s ? s.values[i] : NaN, rgb = s ? s.scale.rgb(v) : null;
      sx.style.background = rgb ? css(rgb) : css(NAN_RGB);
      sx.style.color = textColour(rgb);
      row.title = s ? s.name + " = " + fmt(v) + (s.rank[i] ? "  (rank " + s.rank[i] + " of " + s.order.length + ")" : "") : "";
      row.classList.toggle("top", !!top[i]);
      painted += 1;
    });
    body.dataset.sentences = String(painted);
  }

  // ---- top anchors -------------------------------------------------------------
  function chips(tags) {
    var box = el("span", "st");
    (tags || []).forEach(function (t) {
      var c = el("span", "chip tag-" + String(t).replace(/[^A-Za-z0-9_-]/g, ""), DATA.tag_labels[t] || pretty(t));
      c.title = pretty(t);
      box.appendChild(c);
    });
    return box;
  }
  function renderTop() {
    var list = byId("ta-top"), s = series[current];
    list.textContent = "";
    byId("ta-top-sub").textContent = s ? "by " + pretty(s.name) : "";
    if (!s || !s.order.length) { list.appendChild(el("li", "muted", "No scores to rank.")); return; }
    s.order.slice(0, TOP_K).forEach(function (i, r) {
      var li = el("li");
      li.appendChild(el("span", "rk", String(r + 1)));
      li.appendChild(el("span", "n", "#" + i));
      li.appendChild(el("span", "v", fmt(s.values[i])));
      li.appendChild(el("span", "t", snippet(SENTENCES[i].text, 140)));
      li.title = SENTENCES[i].text;
      li.addEventListener("mouseenter", function () { showSentence(i); });
      li.addEventListener("mouseleave", restore);
      li.addEventListener("click", function () { pin(i, true); });
      list.appendChild(li);
    });
  }

  // ---- bar charts ----------------------------------------------------------------
  var charts = 0;
  function barChart(container, values, scale, label) {
    container.textContent = "";
    var n = values.length, lo = 0, hi = 0;
    values.forEach(function (v) { if (finite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    if (hi === lo) hi = lo + 1;
    var H = 100, y = function (v) { return H * (hi - v) / (hi - lo); };
    var wrap = el("div", "chart");
    var root = svg("svg", { viewBox: "0 0 " + Math.max(n, 1) + " " + H, preserveAspectRatio: "none", role: "img" });
    root.appendChild(svg("rect", { x: 0, y: 0, width: Math.max(n, 1), height: H, fill: "#fbfcfd" }));
    var hl = svg("rect", { x: 0, y: 0, width: 1, height: H, fill: "rgba(9,105,218,0.16)", visibility: "hidden" });
    root.appendChild(hl);
    values.forEach(function (v, i) {
      if (!finite(v)) return;
      var y0 = y(Math.max(v, 0)), y1 = y(Math.min(v, 0));
      root.appendChild(svg("rect", { x: i + 0.12, y: y0, width: 0.76, height: Math.max(y1 - y0, 0.4),
        fill: scale.css(v), stroke: "rgba(0,0,0,0.18)", "stroke-width": 0.5, "vector-effect": "non-scaling-stroke" }));
    });
    if (lo < 0) root.appendChild(svg("line", { x1: 0, x2: n, y1: y(0), y2: y(0), stroke: "#8c959f", "stroke-width": 0.5,
      "vector-effect": "non-scaling-stroke" }));
    wrap.appendChild(root);
    var axis = el("div", "axis");
    axis.appendChild(el("span", null, "sentence 0"));
    axis.appendChild(el("span", null, label + ": " + fmt(lo) + " \u2026 " + fmt(hi)));
    axis.appendChild(el("span", null, String(n - 1)));
    wrap.appendChild(axis);
    var readout = el("div", "readout", "\u00a0");
    wrap.appendChild(readout);
    container.appendChild(wrap);
    function at(ev) {
      var b = root.getBoundingClientRect();
      return clamp(Math.floor((ev.clientX - b.left) / b.width * n), 0, n - 1);
    }
    root.addEventListener("mousemove", function (ev) {
      var i = at(ev);
      readout.textContent = "#" + i + "  " + fmt(values[i]) + "  \u2014  " + snippet(SENTENCES[i].text, 120);
      showSentence(i);
    });
    root.addEventListener("mouseleave", function () { readout.textContent = "\u00a0"; restore(); });
    root.addEventListener("click", function (ev) { pin(at(ev), true); });
    charts += 1;
    return function (i) {
      hl.setAttribute("x", i);
      hl.setAttribute("visibility", "visible");
    };
  }
  var profileMark = null;
  function renderProfile() {
    var s = series[current], box = byId("ta-profile");
    if (!s) { box.textContent = "No per-sentence scores in this result."; profileMark = null; return; }
    byId("ta-profile-sub").textContent = s.method + " \u00b7 " + pretty(s.name);
    profileMark = barChart(box, s.values, s.scale, pretty(s.name));
    if (shown !== null) profileMark(shown);
  }
  listeners.push(function (i) { if (profileMark) profileMark(i); });

  // ---- heatmaps ------------------------------------------------------------------
  function flatten(m) {
    var out = new Float64Array(m.rows * m.cols);
    for (var r = 0; r < m.rows; ++r) {
      var row = m.data[r] || [];
      for (var c = 0; c < m.cols; ++c) out[r * m.cols + c] = num(row[c]);
    }
    return out;
  }
  function guessOrient(data) {
    var upper = 0, lower = 0;
    for (var r = 0; r < S; ++r)
      for (var c = 0; c < S; ++c) {
        var v = data[r * S + c];
        if (r === c || !finite(v) || v === 0) continue;
        if (c > r) upper += 1; else lower += 1;
      }
    return lower > upper ? "target_rows" : "source_rows";
  }
  function headLabels(a, count) {
    var text = a.metadata && typeof a.metadata.receiver_heads === "string" ? a.metadata.receiver_heads : "";
    var parts = text ? text.split(",") : [];
    return parts.length === count ? parts.map(function (p) { return "head " + p; }) : null;
  }
  var heatmaps = 0;
  function heatmap(a, name, m) {
    var key = a.method + "/" + name, info = MATRIX_INFO[key] || {};
    var data = flatten(m), rowsN = m.rows, colsN = m.cols, known = info.rows !== undefined;
    var rowIsSentence = S > 0 && rowsN === S && (known ? /sentence/.test(info.rows) : colsN === S);
    var colIsSentence = S > 0 && colsN === S && (known ? /sentence/.test(info.cols) : rowsN === S);
    var square = rowIsSentence && colIsSentence;
    var rowCaption = info.rows !== undefined ? info.rows : (square ? "row sentence" : "row");
    var colCaption = info.cols !== undefined ? info.cols : (square ? "column sentence" : "column");
    var scale = makeScale(data, 0.98);
    var rowNames = key === "receiver_heads/receiver_vertical" ? headLabels(a, rowsN) : null;

    var card = el("div", "hm");
    card.setAttribute("data-matrix", key);
    var h = el("h3");
    h.appendChild(el("span", "m", a.method + " \u00b7 "));
    h.appendChild(document.createTextNode(pretty(name)));
    card.appendChild(h);
    card.appendChild(el("div", "desc", (info.desc || "") + " " + rowsN + "\u00d7" + colsN + "."));

    var W = 300, w, hh;
    if (rowsN === 1) { w = W; hh = 28; }
    else if (rowsN >= colsN) { hh = W; w = Math.max(W * colsN / rowsN, 60); }
    else { w = W; hh = Math.max(W * rowsN / colsN, 40); }
    var plot = el("div", "plot");
    plot.appendChild(el("div", "ylab", rowCaption));
    var frame = el("div", "frame");
    frame.style.width = w + "px";
    frame.style.height = hh + "px";
    var canvas = document.createElement("canvas");
    canvas.width = colsN;
    canvas.height = rowsN;
    var ctx = canvas.getContext("2d"), img = ctx.createImageData(colsN, rowsN);
    for (var k = 0; k < data.length; ++k) {
      var rgb = scale.rgb(data[k]) || NAN_RGB;
      img.data[4 * k] = rgb[0]; img.data[4 * k + 1] = rgb[1]; img.data[4 * k + 2] = rgb[2]; img.data[4 * k + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    frame.appendChild(canvas);
    var xr = el("div", "xh"), xc = el("div", "xh");
    frame.appendChild(xr);
    frame.appendChild(xc);
    plot.appendChild(frame);
    plot.appendChild(el("div", "xlab", colCaption));
    card.appendChild(plot);
    var meta = el("div", "meta");
    meta.appendChild(legend(scale, true));
    meta.appendChild(el("span", null, scale.count + " values"));
    card.appendChild(meta);
    var readout = el("div", "readout", "\u00a0");
    card.appendChild(readout);

    function cell(ev) {
      var b = frame.getBoundingClientRect();
      return [clamp(Math.floor((ev.clientY - b.top) / b.height * rowsN), 0, rowsN - 1),
              clamp(Math.floor((ev.clientX - b.left) / b.width * colsN), 0, colsN - 1)];
    }
    frame.addEventListener("mousemove", function (ev) {
      var rc = cell(ev), r = rc[0], c = rc[1], v = data[r * colsN + c];
      var rl = rowNames ? rowNames[r] : (rowIsSentence ? "#" + r : (rowsN > 1 ? (rowCaption || "row") + " " + r : ""));
      var cl = colIsSentence ? "#" + c : (colCaption || "column") + " " + c;
      readout.textContent = (rl ? rl + " \u2192 " : "") + cl + ":  " + fmt(v) +
        (rowIsSentence ? "   " + snippet(SENTENCES[r].text, 60) : (colIsSentence ? "   " + snippet(SENTENCES[c].text, 60) : ""));
    });
    frame.addEventListener("mouseleave", function () { readout.textContent = "\u00a0"; });
    frame.addEventListener("click", function (ev) {
      var rc = cell(ev);
      if (rowIsSentence) pin(rc[0], true); else if (colIsSentence) pin(rc[1], true);
    });
    listeners.push(function (i) {
      if (rowIsSentence) {
        xr.style.display = "block";
        xr.style.left = "0"; xr.style.right = "0";
        xr.style.top = (100 * i / rowsN) + "%"; xr.style.height = "max(2px," + (100 / rowsN) + "%)";
      }
      if (colIsSentence) {
        xc.style.display = "block";
        xc.style.top = "0"; xc.style.bottom = "0";
        xc.style.left = (100 * i / colsN) + "%"; xc.style.width = "max(2px," + (100 / colsN) + "%)";
      }
    });
    if (square) {
      sentenceMatrices.push({ method: a.method, name: name, data: data, orient: info.orient || guessOrient(data) });
    }
    heatmaps += 1;
    return card;
  }
  function renderMatrices() {
    var grid = byId("ta-matrices"), any = false;
    R.attributions.forEach(function (a) {
      Object.keys(a.matrices).forEach(function (name) {
        var m = a.matrices[name];
        if (!m || !(m.rows > 0) || !(m.cols > 0)) return;
        grid.appendChild(heatmap(a, name, m));
        any = true;
      });
    });
    if (!any) grid.appendChild(el("p", "muted", "This result holds no matrices."));
    byId("ta-matrices-sub").textContent = heatmaps ? heatmaps + (heatmaps === 1 ? " matrix" : " matrices") +
      " \u00b7 hover a cell to read it, click to select its sentence" : "";
  }

  // ---- receiver heads ------------------------------------------------------------------
  function renderReceivers() {
    var box = byId("ta-receiver");
    R.attributions.forEach(function (a) {
      if (a.method !== "receiver_heads" || !a.scores.receiver_score) return;
      var values = a.scores.receiver_score.map(num);
      var card = el("section", "ta-card");
      var h = el("h2", null, "Receiver heads");
      h.appendChild(el("span", "sub", "sentence receiver scores: mean vertical attention over the receiver heads"));
      card.appendChild(h);
      if (a.metadata && a.metadata.receiver_heads)
        card.appendChild(el("div", "receiver-heads", "heads (layer:head): " + a.metadata.receiver_heads));
      var chart = el("div");
      card.appendChild(chart);
      box.appendChild(card);
      var mark = barChart(chart, values, makeScale(values, 0.95), "receiver score");
      listeners.push(mark);
    });
  }

  // ---- detail panel ----------------------------------------------------------------------
  function linkList(title, items) {
    var col = el("div");
    col.appendChild(el("div", "lk-h", title));
    var ul = el("ul", "links");
    if (!items.length) ul.appendChild(el("li", "muted", "none"));
    items.forEach(function (it) {
      var li = el("li");
      li.appendChild(el("span", "n", "#" + it[0]));
      li.appendChild(el("span", "v", fmt(it[1])));
      li.appendChild(el("span", "t", snippet(SENTENCES[it[0]].text, 90)));
      li.title = SENTENCES[it[0]].text;
      li.addEventListener("click", function () { pin(it[0], true); });
      ul.appendChild(li);
    });
    col.appendChild(ul);
    return col;
  }
  // The largest values among sentences j in [from, to): influence runs forward
  // in a chain of thought, so a sentence's outgoing links go to later
  // sentences and its incoming links come from earlier ones.
  function strongest(get, from, to) {
    var out = [];
    for (var j = from; j < to; ++j) {
      var v = get(j);
      if (finite(v)) out.push([j, v]);
    }
    out.sort(function (x, y) { return y[1] - x[1] || x[0] - y[0]; });
    return out.slice(0, MAX_LINKS);
  }
  function renderDetail(i) {
    var panel = byId("ta-detail"), s = SENTENCES[i];
    panel.textContent = "";
    var head = el("div", "d-head");
    head.appendChild(el("span", "d-idx", "Sentence " + i));
    head.appendChild(chips(s.tags));
    head.appendChild(el("span", "d-pos", (i + 1) + " of " + S + (pinned === i ? " \u00b7 pinned" : "")));
    panel.appendChild(head);
    panel.appendChild(el("div", "d-text", s.text));

    if (series.length) {
      panel.appendChild(el("div", "d-sec", "Scores"));
      var table = el("table", "d-scores"), lastMethod = null;
      series.forEach(function (ser, k) {
        if (ser.method !== lastMethod) {
          var mr = el("tr", "m");
          var td = el("td", null, ser.method);
          td.colSpan = 3;
          mr.appendChild(td);
          table.appendChild(mr);
          lastMethod = ser.method;
        }
        var tr = el("tr", k === current ? "cur" : "");
        var v = ser.values[i];
        var name = el("td");
        var sw = el("span", "sw");
        sw.style.background = ser.scale.css(v);
        name.appendChild(sw);
        name.appendChild(document.createTextNode(pretty(ser.name)));
        if (SCORE_INFO[ser.name]) name.title = SCORE_INFO[ser.name];
        tr.appendChild(name);
        tr.appendChild(el("td", "v", fmt(v)));
        tr.appendChild(el("td", "r", ser.rank[i] ? "#" + ser.rank[i] + " / " + ser.order.length : ""));
        tr.addEventListener("click", function () { select(k); });
        table.appendChild(tr);
      });
      panel.appendChild(table);
    }

    var alt = DATA.alternatives[String(i)];
    var sec = el("div", "d-sec", "Resampled alternatives");
    panel.appendChild(sec);
    var shownAlts = 0;
    if (alt) {
      sec.appendChild(el("span", "sub", alt.total + " rollouts \u00b7 " + alt.distinct + " distinct" +
        (alt.items.length < alt.distinct ? " \u00b7 " + alt.items.length + " most frequent shown" : "")));
      var ul = el("ul", "alts");
      ul.id = "ta-alternatives";
      alt.items.forEach(function (it) {
        var li = el("li", "alt" + (it[0] === s.text ? " same" : ""));
        li.appendChild(el("span", "cnt", "\u00d7" + it[1]));
        li.appendChild(el("span", null, it[0]));
        if (it[0] === s.text) li.title = "identical to the original sentence";
        ul.appendChild(li);
        shownAlts += 1;
      });
      panel.appendChild(ul);
    } else {
      panel.appendChild(el("p", "muted", DATA.has_alternatives ? "No rollouts were resampled at this sentence."
        : "No resampled alternatives in this report (anchors report \u2026 --rollouts DIR, or alternatives= in Python)."));
    }
    body.dataset.alternatives = String(shownAlts);

    if (sentenceMatrices.length) {
      panel.appendChild(el("div", "d-sec", "Strongest links"));
      sentenceMatrices.forEach(function (m) {
        var box = el("div", "lk");
        box.appendChild(el("div", "lk-title", m.method + " \u00b7 " + pretty(m.name)));
        var cols = el("div", "lk-cols");
        var src = m.orient === "source_rows";
        var out = strongest(function (j) { return src ? m.data[i * S + j] : m.data[j * S + i]; }, i + 1, S);
        var inc = strongest(function (j) { return src ? m.data[j * S + i] : m.data[i * S + j]; }, 0, i);
        cols.appendChild(linkList("\u2192 shapes later sentences", out));
        cols.appendChild(linkList("\u2190 depends on", inc));
        box.appendChild(cols);
        panel.appendChild(box);
      });
    }
  }

  // ---- methods -----------------------------------------------------------------------------
  function renderMethods() {
    var box = byId("ta-methods");
    if (!R.attributions.length) { box.appendChild(el("p", "muted", "This result holds no attributions.")); return; }
    R.attributions.forEach(function (a) {
      var card = el("div", "mth");
      card.appendChild(el("h3", null, a.method));
      var nm = Object.keys(a.matrices).length;
      card.appendChild(el("div", "muted", Object.keys(a.scores).length + " score series, " + nm +
        (nm === 1 ? " matrix" : " matrices")));
      [["option", a.options], ["metadata", a.metadata]].forEach(function (pair) {
        var keys = Object.keys(pair[1] || {});
        if (!keys.length) return;
        card.appendChild(el("div", "d-sec", pair[0] === "option" ? "Options" : "Metadata"));
        var t = el("table");
        keys.forEach(function (k) {
          var tr = el("tr"), raw = pair[1][k];
          var text = raw === null ? "null" : typeof raw === "object" ? JSON.stringify(raw) : String(raw);
          tr.appendChild(el("td", null, k));
          var td = el("td", null, text);
          td.title = text;
          tr.appendChild(td);
          t.appendChild(tr);
        });
        card.appendChild(t);
      });
      box.appendChild(card);
    });
  }

  // ---- the series switch ------------------------------------------------------------------
  function select(k) {
    if (k < 0 || k >= series.length) return;
    current = k;
    var sel = byId("ta-series");
    if (sel.value !== String(k)) sel.value = String(k);
    var lg = byId("ta-legend");
    lg.textContent = "";
    lg.appendChild(legend(series[k].scale, false));
    body.dataset.series = series[k].method + "." + series[k].name;
    colourTrace();
    renderTop();
    renderProfile();
    if (shown !== null) { var i = shown; shown = null; showSentence(i); }
  }
  function buildSwitch() {
    var sel = byId("ta-series"), groups = {};
    series.forEach(function (s, k) {
      if (!groups[s.method]) {
        groups[s.method] = el("optgroup");
        groups[s.method].label = s.method;
        sel.appendChild(groups[s.method]);
      }
      var o = el("option", null, pretty(s.name));
      o.value = String(k);
      if (SCORE_INFO[s.name]) o.title = SCORE_INFO[s.name];
      groups[s.method].appendChild(o);
    });
    if (!series.length) {
      var none = el("option", null, "no scores");
      sel.appendChild(none);
      sel.disabled = true;
    }
    sel.addEventListener("change", function () { select(Number(sel.value)); });
    byId("ta-flow").addEventListener("change", function (ev) {
      byId("ta-trace").classList.toggle("flow", ev.target.checked);
    });
  }

  // ---- keyboard ------------------------------------------------------------------------------
  document.addEventListener("keydown", function (ev) {
    var t = ev.target && ev.target.tagName;
    if (t === "SELECT" || t === "INPUT" || t === "TEXTAREA" || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    var from = pinned === null ? -1 : pinned;
    if (ev.key === "ArrowDown" || ev.key === "j") { pin(Math.min(from + 1, S - 1), true); ev.preventDefault(); }
    else if (ev.key === "ArrowUp" || ev.key === "k") { pin(Math.max(from - 1, 0), true); ev.preventDefault(); }
  });

  // ---- go ------------------------------------------------------------------------------------
  buildSwitch();
  renderMatrices();
  renderReceivers();
  renderMethods();
  var start = -1;
  if (hash.score) {
    var dot = hash.score.indexOf(".");
    start = findSeries(hash.score.slice(0, dot), hash.score.slice(dot + 1));
  }
  if (start < 0) start = findSeries(DATA.initial.method, DATA.initial.score);
  if (start < 0 && series.length) start = 0;
  if (start >= 0) select(start); else { colourTrace(); renderTop(); renderProfile(); }
  var first = hash.sentence !== undefined ? parseInt(hash.sentence, 10) : NaN;
  if (!(first >= 0 && first < S)) first = series[current] && series[current].order.length ? series[current].order[0] : 0;
  if (S > 0) pin(first, hash.sentence !== undefined);
  body.dataset.matrices = String(heatmaps);
  body.dataset.charts = String(charts);
  body.dataset.rendered = "ok";
})();


