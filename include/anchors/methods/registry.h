#pragma once
// Methods by name, so tools can list them and users can add their own:
//   anchors::register_builtins();   // builtins.h: the built-ins of the linked libraries
//   for (auto& m : anchors::methods()) ...;
//   anchors::register_method("mine", [] { return std::make_unique<Mine>(); });
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "anchors/methods/builtins.h"
#include "anchors/methods/method.h"

namespace anchors {

using MethodFactory = std::function<std::unique_ptr<AttributionMethod>()>;

struct MethodInfo {
  std::string name;
  std::string description;
  ValueMap default_options;
  std::map<std::string, std::string> option_docs;  // AttributionMethod::option_docs()
  std::vector<std::string> headline_scores;        // AttributionMethod::headline_scores()
  MethodNeeds needs;
};

// Registers (or replaces) a method. Thread-safe.
void register_method(const std::string& name, MethodFactory factory);

// All registered methods, sorted by name. The core's built-ins are always
// present; those of anchors::anchors once register_builtins() has run.
std::vector<MethodInfo> methods();

// A new instance of the named method; anchors::Error listing the names otherwise.
std::unique_ptr<AttributionMethod> make_method(const std::string& name);

// The registered method's information; anchors::Error listing the names otherwise.
MethodInfo method_info(const std::string& name);

// Which series of `result` to show: `score` (in an attribution of `method`
// when that is given too), else the headline of the first attribution (of
// `method`) whose registered method names one it has, else the first series
// (by name) of the first attribution (of `method`) that has any. Returns
// {method, score}; {"", ""} when nothing is asked and the result has no
// series. anchors::Error listing the available "method.score" names when the
// method or score asked for is not there. One rule for `anchors show`,
// `anchors report`, the white-box commands and the notebook display.
std::pair<std::string, std::string> choose_score(const AnalysisResult& result, const std::string& method = {},
                                                 const std::string& score = {});

// Fills unspecified options with the method's defaults; an option the method
// does not know, or one whose type differs from the default's, is an anchors::Error
// naming the option, the type it expects and its doc. An integer is taken
// where a number is expected. The one check of option names and types: the
// methods' run(), the CLI and Python's method objects (at construction) use it.
ValueMap resolve_options(const AttributionMethod& method, const ValueMap& given);

// The integer option `name` of resolved options `o` (a count, a slot), which
// must be >= 0; anchors::Error "<who>: option <name> must be >= 0, got <v>"
// otherwise.
std::int64_t non_negative_option(const ValueMap& o, const char* name, const std::string& who);

}  // namespace anchors
