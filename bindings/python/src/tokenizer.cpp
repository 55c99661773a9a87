#include <pybind11/stl.h>

#include "anchors/core/error.h"
#include "anchors/core/utf8.h"
#include "anchors/model/embedder.h"
#include "anchors/model/prompt.h"
#include "anchors/model/tokenizer.h"
#include "bindings.h"
#include "token_ids.h"

namespace anchors::python {
namespace {

using model::Tokenizer;

// Python's view of an encoding: ids and code point offsets into the input str.
struct PyEncoding {
  std::vector<std::int64_t> ids;
  std::vector<std::pair<std::size_t, std::size_t>> offsets;
};

PyEncoding encode_for_python(const Tokenizer& tok, const std::string& text, bool add_special_tokens) {
  Tokenizer::Encoding enc;
  {
    py::gil_scoped_release release;
    enc = tok.encode(text, add_special_tokens);
  }
  auto offsets = model::code_point_offsets(text, enc.offsets);
  return PyEncoding{std::move(enc.ids), std::move(offsets)};
}

// A rendered prompt with code point spans (Python string offsets).
struct PyRenderedPrompt {
  std::string format;
  std::string text;
  std::vector<std::int64_t> ids;
  std::pair<std::size_t, std::size_t> reasoning;         // code points of `text`
  std::pair<std::int64_t, std::int64_t> reasoning_tokens;  // positions in `ids`
};

}  // namespace

void bind_tokenizer(py::module_& m) {
  py::class_<PyEncoding>(m, "Encoding", "Token ids and their (start, end) code point offsets into the input.")
      .def_readonly("ids", &PyEncoding::ids)
      .def_readonly("offsets", &PyEncoding::offsets)
      .def("__len__", [](const PyEncoding& e) { return e.ids.size(); })
      .def("__repr__", [](const PyEncoding& e) { return "Encoding(" + std::to_string(e.ids.size()) + " tokens)"; });

  py::class_<Tokenizer, std::shared_ptr<Tokenizer>>(
      m, "Tokenizer", "A Hugging Face tokenizer.json (byte-level BPE or WordPiece), ids identical to `tokenizers`.")
      .def_static("load", &Tokenizer::load, py::arg("path"), "Load a tokenizer.json, or the one in a folder.")
      .def_static("from_json", [](const std::string& json) { return Tokenizer::from_json(json); }, py::arg("json"))
      .def("encode", &encode_for_python, py::arg("text"), py::arg("add_special_tokens") = false)
      .def("count_tokens", &Tokenizer::count_tokens, py::arg("text"))
      .def(
          "decode",
          [](const Tokenizer& t, const TokenIds& ids, bool skip_special_tokens) {
            return t.decode(ids.ids, skip_special_tokens);
          },
          py::arg("ids"), py::arg("skip_special_tokens") = false)
      .def_property_readonly("vocab_size", &Tokenizer::vocab_size)
      .def_property_readonly("kind", &Tokenizer::kind)
      .def_property_readonly("bos_id", &Tokenizer::bos_id)
      .def_property_readonly("eos_id", &Tokenizer::eos_id)
      .def("token_to_id", &Tokenizer::token_to_id, py::arg("token"))
      .def("id_to_token", &Tokenizer::id_to_token, py::arg("id"))
      .def_property_readonly("added_tokens",
                             [](const Tokenizer& t) {
                               std::vector<std::string> names;
                               for (const auto& a : t.added_tokens()) names.push_back(a.content);
                               return names;
                             })
      .def("__repr__", [](const Tokenizer& t) {
        return "Tokenizer(" + t.kind() + ", vocab_size=" + std::to_string(t.vocab_size()) + ")";
      });

  py::class_<PyRenderedPrompt>(m, "RenderedPrompt", "Prompt + reasoning as text and ids, with the reasoning's spans.")
      .def_readonly("format", &PyRenderedPrompt::format)
      .def_readonly("text", &PyRenderedPrompt::text)
      .def_readonly("ids", &PyRenderedPrompt::ids)
      .def_readonly("reasoning", &PyRenderedPrompt::reasoning, "(start, end) code point offsets into text")
      .def_readonly("reasoning_tokens", &PyRenderedPrompt::reasoning_tokens, "(start, end) positions in ids")
      .def("__repr__", [](const PyRenderedPrompt& p) {
        return "RenderedPrompt(" + p.format + ", " + std::to_string(p.ids.size()) + " tokens)";
      });
  m.def(
      "render_prompt",
      [](const Tokenizer& tokenizer, const std::string& format, const std::string& problem,
         const std::string& reasoning, bool add_special_tokens) {
        model::PromptOptions options;
        options.add_special_tokens = add_special_tokens;
        const auto r = model::render_prompt(tokenizer, model::parse_prompt_format(format), problem, reasoning, options);
        const auto spans = model::code_point_offsets(r.text, {r.reasoning});
        return PyRenderedPrompt{model::prompt_format_name(r.format), r.text, r.ids, spans.front(),
                                {r.reasoning_tokens.begin, r.reasoning_tokens.end}};
      },
      py::arg("tokenizer"), py::arg("format"), py::arg("problem"), py::arg("reasoning") = "",
      py::arg("add_special_tokens") = true,
      "Render a problem (and a chain of thought) in a prompt format: \"raw\" (the reference completion "
      "prompt), \"deepseek_r1\" or \"qwen3\".");

  py::class_<Embedder, std::shared_ptr<Embedder>>(m, "EmbedderBase", "Sentence embedder interface (C++).")
      .def("embed", &Embedder::embed, py::arg("texts"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("name", &Embedder::name);
  py::class_<model::BertEmbedder, Embedder, std::shared_ptr<model::BertEmbedder>>(
      m, "Embedder", "A sentence-transformers BERT embedder (mean pooling, normalised), e.g. all-MiniLM-L6-v2.")
      .def_static(
          "load",
          [](const std::string& path, const std::string& device) {
            py::gil_scoped_release release;
            return model::BertEmbedder::load(path, torch::Device(device));
          },
          py::arg("path"), py::arg("device") = "cpu")
      .def(
          "embed_tensor",
          [](model::BertEmbedder& e, const std::vector<std::string>& texts) {
            py::gil_scoped_release release;
            return e.embed_tensor(texts);
          },
          py::arg("texts"), "Embeddings as a float32 tensor [N, dimension].")
      .def_property_readonly("dimension", &model::BertEmbedder::dimension)
      .def_property_readonly("max_seq_length", &model::BertEmbedder::max_seq_length)
      .def_property("batch_size", &model::BertEmbedder::batch_size, &model::BertEmbedder::set_batch_size)
      .def("__repr__", [](const model::BertEmbedder& e) { return "Embedder(" + e.name() + ")"; });
}

}  // namespace anchors::python
