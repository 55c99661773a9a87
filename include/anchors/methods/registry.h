#pragma once
// Methods by name, so tools can list them and users can add their own:
//   anchors::register_builtins();   // builtins.h: the built-ins of the linked libraries
//   for (auto& m : anchors::methods()) ...;
//   anchors::register_method("mine", [] { return std::make_unique<Mine>(); });
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "anchors/methods/builtins.h"
#include "anchors/methods/method.h"

namespace anchors {

using MethodFactory = std::function<std::unique_ptr<AttributionMethod>()>;

struct MethodInfo {
  std::string name;
  std::string description;
  ValueMap default_options;
};

// Registers (or replaces) a method. Thread-safe.
void register_method(const std::string& name, MethodFactory factory);

// All registered methods, sorted by name. The core's built-ins are always
// present; those of anchors::anchors once register_builtins() has run.
std::vector<MethodInfo> methods();

// A new instance of the named method; anchors::Error listing the names otherwise.
std::unique_ptr<AttributionMethod> make_method(const std::string& name);

// Fills unspecified options with the method's defaults; an option the method
// does not know, or one whose type differs from the default's, is an anchors::Error.
ValueMap resolve_options(const AttributionMethod& method, const ValueMap& given);

}  // namespace anchors
