#pragma once
#include <map>
#include <string>
#include <vector>

#include "anchors/core/sentence.h"

namespace anchors {

// One reasoning trace: the prompt, the generated text (chain of thought and
// answer, as in base_solution.json's `solution`), its final answer and its
// sentences. Sentence char spans index into `text`.
struct Trace {
  std::string prompt;
  std::string text;
  std::string answer;
  std::vector<Sentence> sentences;
  std::map<std::string, std::string> metadata;  // e.g. model, problem id, is_correct

  // Checks that every sentence's index equals its position, its char span lies
  // inside `text` on UTF-8 boundaries, spans are ordered and non-overlapping,
  // and token spans (when present) are ordered; anchors::Error otherwise.
  void validate() const;

  bool operator==(const Trace& o) const {
    return prompt == o.prompt && text == o.text && answer == o.answer &&
           sentences == o.sentences && metadata == o.metadata;
  }
};

}  // namespace anchors
