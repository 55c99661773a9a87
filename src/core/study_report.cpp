#include "anchors/core/study_report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/report.h"
#include "html_escape.h"

namespace anchors {
namespace {

namespace fs = std::filesystem;
using detail::html_escape;

std::string figure_score(const StudyTable& table, const std::string& given) {
  if (!given.empty()) return table.score_column(given);
  for (const char* name :
       {"counterfactual_importance_kl", "counterfactual_importance_accuracy", "resampling_importance_kl"}) {
    try {
      return table.score_column(name);
    } catch (const Error&) {
    }
  }
  if (table.scores.empty()) throw Error("study report: the traces have no scores to show");
  return table.scores.begin()->first;
}

std::string number(double v) { return std::isfinite(v) ? fmt::format("{:.4g}", v) : std::string(); }

// A bar chart of group means with their intervals, as inline SVG.
std::string bar_chart(const std::vector<GroupAggregate>& groups, const std::string& caption) {
  constexpr double kWidth = 720, kHeight = 250, kLeft = 56, kBottom = 58, kTop = 14;
  double lo = 0, hi = 0;
  for (const auto& g : groups)
    for (double v : {g.mean, g.ci_low, g.ci_high})
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (hi == lo) hi = lo + 1;
  const double plot_h = kHeight - kBottom - kTop, plot_w = kWidth - kLeft - 8;
  const auto y = [&](double v) { return kTop + (hi - v) / (hi - lo) * plot_h; };
  const double slot = groups.empty() ? plot_w : plot_w / static_cast<double>(groups.size());
  std::string svg = fmt::format(
      "<figure class=\"fig\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" role=\"img\">",
      kWidth, kHeight);
  svg += fmt::format("<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#333\" stroke-width=\"0.6\"/>",
                     kLeft, kWidth - 8, y(0));
  for (double v : {lo, hi})
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"9\" text-anchor=\"end\">{}</text>", kLeft - 4,
                       y(v) + 3, html_escape(number(v)));
  for (std::size_t k = 0; k < groups.size(); ++k) {
    const GroupAggregate& g = groups[k];
    const double x = kLeft + slot * static_cast<double>(k) + slot * 0.2, w = slot * 0.6;
    const double top = y(std::max(g.mean, 0.0)), bottom = y(std::min(g.mean, 0.0));
    svg += fmt::format(
        "<rect class=\"bar\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#4c78a8\">"
        "<title>{}: mean {} [{}, {}], {} sentences, {} problems</title></rect>",
        x, top, w, std::max(bottom - top, 0.5), html_escape(g.group), number(g.mean), number(g.ci_low),
        number(g.ci_high), g.sentences, g.problems);
    if (std::isfinite(g.ci_low) && std::isfinite(g.ci_high))
      svg += fmt::format(
          "<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"#222\" stroke-width=\"1\"/>",
          x + w / 2, y(g.ci_low), y(g.ci_high));
    // The tag on two lines ("uncertainty" / "management"): the slots are narrow.
    const std::size_t cut = g.group.find('_');
    const std::string line1 = g.group.substr(0, cut);
    std::string line2 = cut == std::string::npos ? "" : g.group.substr(cut + 1);
    std::replace(line2.begin(), line2.end(), '_', ' ');
    svg += fmt::format(
        "<text x=\"{0:.1f}\" y=\"{1:.1f}\" font-size=\"9\" text-anchor=\"middle\">{2}"
        "<tspan x=\"{0:.1f}\" dy=\"11\">{3}</tspan></text>",
        x + w / 2, kHeight - kBottom + 14, html_escape(line1), html_escape(line2));
  }
  svg += "</svg><figcaption>" + html_escape(caption) + "</figcaption></figure>\n";
  return svg;
}

constexpr const char* kStyle = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.4em}
table{border-collapse:collapse;font-size:12px}th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}
th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}th.sorted{background:#dde6f0}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.fig{display:inline-block;margin:0 1em 1em 0}figcaption{font-size:12px;color:#555}
)";

// Sorts the table by a column (a click on its header, or #sort=[-]COLUMN on
// load) and records on <body> what it rendered.
constexpr const char* kScript = R"(
(function(){
var body=document.body;
try{
var table=document.getElementById('ta-study');var head=table.tHead.rows[0];var tb=table.tBodies[0];
var dir={};
function sortBy(col,desc){
  var th=null;for(var i=0;i<head.cells.length;i++){if(head.cells[i].getAttribute('data-col')===col){th=head.cells[i];var idx=i;}}
  if(!th)throw new Error('no column '+col);
  var numeric=th.getAttribute('data-kind')==='n';
  var rows=Array.prototype.slice.call(tb.rows);
  rows.sort(function(a,b){
    var x=a.cells[idx].getAttribute('data-v'),y=b.cells[idx].getAttribute('data-v');
    if(numeric){x=x===''?NaN:parseFloat(x);y=y===''?NaN:parseFloat(y);
      if(isNaN(x)&&isNaN(y))return 0;if(isNaN(x))return 1;if(isNaN(y))return -1;return desc?y-x:x-y;}
    return desc?(y<x?-1:y>x?1:0):(x<y?-1:x>y?1:0);});
  rows.forEach(function(r){tb.appendChild(r);});
  for(var j=0;j<head.cells.length;j++)head.cells[j].classList.remove('sorted');
  th.classList.add('sorted');dir[col]=desc;
  body.setAttribute('data-sorted',(desc?'-':'')+col);
}
for(var i=0;i<head.cells.length;i++){(function(th){th.addEventListener('click',function(){
  var col=th.getAttribute('data-col');sortBy(col,!(dir[col]===true));});})(head.cells[i]);}
var m=/sort=(-?)([^&]+)/.exec(decodeURIComponent(location.hash||''));
if(m)sortBy(m[2],m[1]==='-');
body.setAttribute('data-rows',String(tb.rows.length));
body.setAttribute('data-rendered','ok');
}catch(e){body.setAttribute('data-errors',String(e&&e.message||e));}
})();
)";

}  // namespace

StudyReportSummary write_study_report(const std::string& root, const std::string& out_dir,
                                      const StudyReportOptions& options) {
  std::error_code ec;
  fs::create_directories(fs::path(out_dir) / "traces", ec);
  if (ec) throw Error(fmt::format("{}: cannot create the report folder ({})", out_dir, ec.message()));
  // Each trace's own page, written as the table reads it (one load per trace).
  std::vector<std::string> links;  // per trace, in row order
  const StudyTable table =
      study_table_from_folders(root, [&](const AnalysisResult& result, const StudyTable& t, std::size_t r) {
        if (r == t.size()) return;  // no sentences: no row, no page
        const std::string& dir = t.source[r];
        ReportOptions ro;
        ro.title = fmt::format("{} / {} ({})", t.model[r].empty() ? "-" : t.model[r], t.problem[r], t.base[r]);
        if (file_exists((fs::path(dir) / "chunks_resampled.json").string()))
          ro.alternatives = read_alternatives(dir, result.trace);
        links.push_back(fmt::format("traces/trace_{}.html", links.size()));
        write_report_html(result, (fs::path(out_dir) / links.back()).string(), ro);
      });
  StudyReportSummary summary;
  summary.score = figure_score(table, options.score);
  AggregateOptions plain = options.aggregate;
  plain.debias_position = false;
  AggregateOptions debiased = options.aggregate;
  debiased.debias_position = true;
  const auto by_tag = mean_by(table, summary.score, "tag", plain);
  const auto by_tag_debiased = mean_by(table, summary.score, "tag", debiased);

  // One row per trace: the rows of a source are contiguous.
  struct Row {
    std::size_t begin = 0, end = 0;
    std::string link;
  };
  std::vector<Row> rows;
  for (std::size_t r = 0; r < table.size();) {
    Row row{r, r, links.at(rows.size())};
    while (row.end < table.size() && table.source[row.end] == table.source[r]) ++row.end;
    rows.push_back(row);
    r = row.end;
  }

  fs::path root_path = fs::path(root).lexically_normal();
  if (root_path.filename().empty()) root_path = root_path.parent_path();
  const std::string title =
      options.title.empty() ? "Thought anchors study - " + root_path.filename().string() : options.title;
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" +
                     html_escape(title) + "</title><style>" + kStyle + "</style></head>\n<body>\n<h1>" +
                     html_escape(title) + "</h1>\n";
  std::size_t problems = 0;
  {
    std::vector<std::pair<std::string, std::string>> seen;
    for (const Row& row : rows) seen.emplace_back(table.model[row.begin], table.problem[row.begin]);
    std::sort(seen.begin(), seen.end());
    problems = static_cast<std::size_t>(std::unique(seen.begin(), seen.end()) - seen.begin());
  }
  html += fmt::format("<p>{} traces of {} problems, {} sentences, from <code>{}</code>.</p>\n", rows.size(), problems,
                      table.size(), html_escape(root));
  html += "<h2>" + html_escape(summary.score) + " by function tag</h2>\n";
  const std::string ci = fmt::format("{:g} % bootstrap interval over problems ({} resamples)",
                                     100 * options.aggregate.confidence, options.aggregate.resamples);
  html += bar_chart(by_tag, "Mean by first function tag, " + ci + ".");
  html += bar_chart(by_tag_debiased, "The same after removing the linear effect of position (residuals), " + ci + ".");

  html += "<h2>Traces</h2>\n<table id=\"ta-study\"><thead><tr>";
  const std::vector<std::pair<std::string, char>> fixed = {{"model", 's'}, {"problem", 's'}, {"base", 's'},
                                                           {"level", 's'}, {"type", 's'},    {"sentences", 'n'}};
  for (const auto& [name, kind] : fixed)
    html += fmt::format("<th data-col=\"{0}\" data-kind=\"{1}\">{0}</th>", name, kind);
  for (const auto& [column, values] : table.scores)
    html += fmt::format("<th data-col=\"{0}\" data-kind=\"n\" title=\"{0}: mean over the trace's sentences\">{1}</th>",
                        html_escape(column), html_escape(column.substr(column.find('.') + 1)));
  html += "</tr></thead>\n<tbody>\n";
  for (const Row& row : rows) {
    const std::size_t r = row.begin;
    html += "<tr>";
    for (const std::string* v : {&table.model[r], &table.problem[r], &table.base[r], &table.level[r], &table.type[r]}) {
      const bool linked = v == &table.problem[r];
      html += fmt::format("<td data-v=\"{0}\">{1}{0}{2}</td>", html_escape(*v),
                          linked ? "<a href=\"" + html_escape(row.link) + "\">" : "", linked ? "</a>" : "");
    }
    html += fmt::format("<td class=\"n\" data-v=\"{0}\">{0}</td>", row.end - row.begin);
    for (const auto& [column, values] : table.scores) {
      double s = 0, n = 0;
      for (std::size_t i = row.begin; i < row.end; ++i)
        if (std::isfinite(values[i])) s += values[i], n += 1;
      const std::string v = n > 0 ? number(s / n) : std::string();
      html += fmt::format("<td class=\"n\" data-v=\"{0}\">{0}</td>", v);
    }
    html += "</tr>\n";
  }
  html += "</tbody></table>\n<script>" + std::string(kScript) + "</script>\n</body></html>\n";
  summary.index = (fs::path(out_dir) / "index.html").string();
  write_file_atomic(summary.index, html);
  summary.traces = rows.size();
  return summary;
}

}  // namespace anchors
