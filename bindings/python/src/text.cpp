#include <pybind11/stl.h>

#include "anchors/core/answers.h"
#include "anchors/core/error.h"
#include "anchors/core/segmentation.h"
#include "anchors/core/utf8.h"
#include "bindings.h"

namespace anchors::python {
namespace {

// `offsets` is a cursor over the source text: the list versions share one for
// all sentences, so converting the spans of a whole trace is one pass over the
// text instead of a walk from its start for every sentence.
PySentence to_python(const Sentence& s, utf8::Cursor& offsets) {
  PySentence p;
  p.index = s.index;
  p.text = s.text;
  p.char_start = offsets.codepoint_offset(s.chars.begin);
  p.char_end = offsets.codepoint_offset(s.chars.end);
  if (s.tokens) {
    p.token_start = s.tokens->begin;
    p.token_end = s.tokens->end;
  }
  p.tags = s.tags;
  return p;
}

Sentence from_python(const PySentence& p, utf8::Cursor& offsets) {
  Sentence s;
  s.index = p.index;
  s.text = p.text;
  if (p.char_end < p.char_start)
    throw Error("sentence " + std::to_string(p.index) + ": char_end < char_start");
  s.chars = {offsets.byte_offset(p.char_start), offsets.byte_offset(p.char_end)};
  if (p.token_start.has_value() != p.token_end.has_value())
    throw Error("sentence " + std::to_string(p.index) + ": token_start and token_end must be set together");
  if (p.token_start) s.tokens = TokenSpan{*p.token_start, *p.token_end};
  s.tags = p.tags;
  return s;
}

}  // namespace

PySentence to_python(const Sentence& s, const std::string& text) {
  utf8::Cursor offsets(text);
  return to_python(s, offsets);
}

Sentence from_python(const PySentence& p, const std::string& text) {
  utf8::Cursor offsets(text);
  return from_python(p, offsets);
}

std::vector<PySentence> to_python(const std::vector<Sentence>& v, const std::string& text) {
  std::vector<PySentence> out;
  out.reserve(v.size());
  utf8::Cursor offsets(text);
  for (const auto& s : v) out.push_back(to_python(s, offsets));
  return out;
}

std::vector<Sentence> from_python(const std::vector<PySentence>& v, const std::string& text) {
  std::vector<Sentence> out;
  out.reserve(v.size());
  utf8::Cursor offsets(text);
  for (const auto& s : v) out.push_back(from_python(s, offsets));
  return out;
}

namespace {

std::string sentence_repr(const PySentence& s) {
  std::string text = s.text.size() > 60 ? s.text.substr(0, 57) + "..." : s.text;
  std::string r = "Sentence(index=" + std::to_string(s.index) + ", chars=[" + std::to_string(s.char_start) + ", " +
                  std::to_string(s.char_end) + ")";
  if (s.token_start) r += ", tokens=[" + std::to_string(*s.token_start) + ", " + std::to_string(*s.token_end) + ")";
  if (!s.tags.empty()) {
    r += ", tags=[";
    for (std::size_t i = 0; i < s.tags.size(); ++i) r += (i ? ", " : "") + s.tags[i];
    r += "]";
  }
  return r + ", text=" + py::repr(py::str(text)).cast<std::string>() + ")";
}

}  // namespace

void bind_text(py::module_& m) {
  py::class_<PySentence>(m, "Sentence", "One sentence of a trace; char offsets are Unicode code points.")
      .def(py::init([](std::size_t index, std::string text, std::size_t char_start, std::size_t char_end,
                       std::optional<std::int64_t> token_start, std::optional<std::int64_t> token_end,
                       std::vector<std::string> tags) {
             return PySentence{index, std::move(text), char_start, char_end, token_start, token_end, std::move(tags)};
           }),
           py::arg("index"), py::arg("text"), py::arg("char_start"), py::arg("char_end"),
           py::arg("token_start") = py::none(), py::arg("token_end") = py::none(),
           py::arg("tags") = std::vector<std::string>{})
      .def_readwrite("index", &PySentence::index)
      .def_readwrite("text", &PySentence::text)
      .def_readwrite("char_start", &PySentence::char_start)
      .def_readwrite("char_end", &PySentence::char_end)
      .def_readwrite("token_start", &PySentence::token_start)
      .def_readwrite("token_end", &PySentence::token_end)
      .def_readwrite("tags", &PySentence::tags)
      .def_property_readonly("char_span", [](const PySentence& s) { return py::make_tuple(s.char_start, s.char_end); })
      .def_property_readonly("token_span",
                             [](const PySentence& s) -> py::object {
                               if (!s.token_start) return py::none();
                               return py::make_tuple(*s.token_start, *s.token_end);
                             })
      .def("__eq__",
           [](const PySentence& a, const PySentence& b) {
             return a.index == b.index && a.text == b.text && a.char_start == b.char_start &&
                    a.char_end == b.char_end && a.token_start == b.token_start && a.token_end == b.token_end &&
                    a.tags == b.tags;
           })
      .def("__repr__", &sentence_repr)
      .def("to_dict", [](const PySentence& s) {
        py::dict d;
        d["index"] = s.index;
        d["text"] = s.text;
        d["char_start"] = s.char_start;
        d["char_end"] = s.char_end;
        d["token_start"] = s.token_start;
        d["token_end"] = s.token_end;
        d["tags"] = s.tags;
        return d;
      });

  py::class_<SegmentOptions>(m, "SegmentOptions")
      .def(py::init<>())
      .def_readwrite("think_only", &SegmentOptions::think_only)
      .def_readwrite("split_paragraphs", &SegmentOptions::split_paragraphs)
      .def_readwrite("sentence_terminators", &SegmentOptions::sentence_terminators)
      .def_readwrite("merge_shorter_than", &SegmentOptions::merge_shorter_than)
      .def_readwrite("drop_shorter_than", &SegmentOptions::drop_shorter_than);

  py::class_<Trace>(m, "Trace", "A reasoning trace: prompt, generated text, final answer, sentences, metadata.")
      .def(py::init([](std::string prompt, std::string text, std::string answer, std::vector<PySentence> sentences,
                       std::map<std::string, std::string> metadata) {
             Trace t;
             t.prompt = std::move(prompt);
             t.text = std::move(text);
             t.answer = std::move(answer);
             t.sentences = from_python(sentences, t.text);
             t.metadata = std::move(metadata);
             t.validate();
             return t;
           }),
           py::arg("prompt") = "", py::arg("text") = "", py::arg("answer") = "",
           py::arg("sentences") = std::vector<PySentence>{},
           py::arg("metadata") = std::map<std::string, std::string>{})
      .def_static(
          "from_text",
          [](std::string text, std::string prompt, std::optional<std::string> answer, const SegmentOptions& options,
             std::map<std::string, std::string> metadata) {
            Trace t;
            t.prompt = std::move(prompt);
            t.text = std::move(text);
            t.sentences = split_sentences(t.text, options);
            t.answer = answer ? *answer : extract_boxed(t.text).value_or("");
            t.metadata = std::move(metadata);
            return t;
          },
          py::arg("text"), py::arg("prompt") = "", py::arg("answer") = py::none(),
          py::arg("options") = SegmentOptions{}, py::arg("metadata") = std::map<std::string, std::string>{},
          "Segment `text` into sentences; the answer defaults to its first non-empty \\boxed{}.")
      .def_readwrite("prompt", &Trace::prompt)
      .def_readwrite("text", &Trace::text)
      .def_readwrite("answer", &Trace::answer)
      .def_readwrite("metadata", &Trace::metadata)
      .def_property(
          "sentences", [](const Trace& t) { return to_python(t.sentences, t.text); },
          [](Trace& t, const std::vector<PySentence>& s) { t.sentences = from_python(s, t.text); })
      .def("validate", &Trace::validate)
      .def("__copy__", [](const Trace& t) { return t; })
      .def("__deepcopy__", [](const Trace& t, const py::dict&) { return t; }, py::arg("memo"))
      .def("__len__", [](const Trace& t) { return t.sentences.size(); })
      .def("__eq__", [](const Trace& a, const Trace& b) { return a == b; })
      .def("__repr__", [](const Trace& t) {
        return "Trace(" + std::to_string(t.sentences.size()) + " sentences, " + std::to_string(utf8::length(t.text)) +
               " characters, answer=" + py::repr(py::str(t.answer)).cast<std::string>() + ")";
      });

  const SegmentOptions defaults;
  m.def(
      "split_sentences",
      [](const std::string& text, bool think_only, bool split_paragraphs, std::string sentence_terminators,
         std::size_t merge_shorter_than, std::size_t drop_shorter_than) {
        SegmentOptions o;
        o.think_only = think_only;
        o.split_paragraphs = split_paragraphs;
        o.sentence_terminators = std::move(sentence_terminators);
        o.merge_shorter_than = merge_shorter_than;
        o.drop_shorter_than = drop_shorter_than;
        return to_python(split_sentences(text, o), text);
      },
      py::arg("text"), py::kw_only(), py::arg("think_only") = defaults.think_only,
      py::arg("split_paragraphs") = defaults.split_paragraphs,
      py::arg("sentence_terminators") = defaults.sentence_terminators,
      py::arg("merge_shorter_than") = defaults.merge_shorter_than,
      py::arg("drop_shorter_than") = defaults.drop_shorter_than,
      "Split a reasoning trace into sentences with the reference chunker's rules.");

  m.def("extract_boxed", &extract_boxed, py::arg("text"),
        "The first non-empty \\boxed{...} content of `text`, or None.");
  m.def("extract_all_boxed", &extract_all_boxed, py::arg("text"));
  m.def("normalize_answer", &normalize_answer, py::arg("answer"));
  m.def("answers_equivalent", &answers_equivalent, py::arg("a"), py::arg("b"));
  m.def("normalize_answer_reference", &normalize_answer_reference, py::arg("answer"),
        "The authors' normalisation, string for string (compat mode).");
  m.def("answer_numeric_value", &answer_numeric_value, py::arg("normalized_answer"),
        "The numeric value of a normalized answer, or None when it is not a number.");
}

}  // namespace anchors::python
