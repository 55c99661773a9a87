// Uses only anchors::core (no LibTorch).
#include <anchors/core/answers.h>
#include <anchors/core/segmentation.h>

#include <iostream>

int main() {
  const auto sentences = anchors::split_sentences("First we add the numbers. Then we check the sum! \\boxed{42}");
  std::cout << "sentences=" << sentences.size()
            << " answer=" << anchors::extract_boxed("so \\boxed{42}").value_or("?") << "\n";
  return sentences.size() == 3 ? 0 : 1;
}
