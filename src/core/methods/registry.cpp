#include "anchors/methods/registry.h"

#include <algorithm>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "builtin_methods.h"

namespace anchors {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, MethodFactory> factories;
};

// Built-ins are registered explicitly on first use rather than by static
// initialisers: objects in a static library that nothing references are
// dropped by the linker, and their self-registration with them.
Registry& registry() {
  static Registry* instance = [] {
    auto* r = new Registry();
    for (auto& [name, factory] : detail::builtin_methods()) r->factories[name] = std::move(factory);
    return r;
  }();
  return *instance;
}

MethodInfo info_of(const std::string& name, const AttributionMethod& method) {
  return {name, method.description(), method.default_options(), method.option_docs(), method.headline_scores(),
          method.needs()};
}

}  // namespace

// The core version of builtins.h's function (anchors::anchors defines its own
// in an inline namespace): the core's built-ins are seeded with the registry
// itself, so creating it is all there is to do.
void register_builtins() { (void)registry(); }

void register_method(const std::string& name, MethodFactory factory) {
  if (name.empty()) throw Error("register_method: the method name is empty");
  if (!factory) throw Error(fmt::format("register_method(\"{}\"): the factory is empty", name));
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.factories[name] = std::move(factory);
}

std::vector<MethodInfo> methods() {
  Registry& r = registry();
  std::map<std::string, MethodFactory> snapshot;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    snapshot = r.factories;
  }
  std::vector<MethodInfo> out;
  for (const auto& [name, factory] : snapshot) out.push_back(info_of(name, *factory()));
  return out;
}

MethodInfo method_info(const std::string& name) { return info_of(name, *make_method(name)); }

std::pair<std::string, std::string> choose_score(const AnalysisResult& result, const std::string& method,
                                                 const std::string& score) {
  std::vector<const Attribution*> candidates;
  for (const auto& a : result.attributions)
    if (method.empty() || a.method == method) candidates.push_back(&a);
  if (!score.empty()) {
    for (const Attribution* a : candidates)
      if (a->scores.count(score)) return {a->method, score};
  } else {
    // A method nobody registered (a result of another program) has no headline.
    const auto headlines = [](const std::string& name) {
      try {
        return make_method(name)->headline_scores();
      } catch (const Error&) {
        return std::vector<std::string>{};
      }
    };
    for (const Attribution* a : candidates)
      for (const auto& name : headlines(a->method))
        if (a->scores.count(name)) return {a->method, name};
    for (const Attribution* a : candidates)
      if (!a->scores.empty()) return {a->method, a->scores.begin()->first};
    if (method.empty()) return {"", ""};
  }
  std::string available;
  for (const auto& a : result.attributions)
    for (const auto& [name, values] : a.scores) available += (available.empty() ? "" : ", ") + a.method + "." + name;
  throw Error(fmt::format("the result has no score series{}{} (available: {})",
                          method.empty() ? "" : " of method \"" + method + "\"",
                          score.empty() ? "" : " named \"" + score + "\"", available.empty() ? "none" : available));
}

std::unique_ptr<AttributionMethod> make_method(const std::string& name) {
  Registry& r = registry();
  MethodFactory factory;
  std::string known;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.factories.find(name);
    if (it != r.factories.end()) factory = it->second;
    for (const auto& [k, _] : r.factories) known += (known.empty() ? "" : ", ") + k;
  }
  if (!factory) throw Error(fmt::format("unknown method \"{}\" (registered: {})", name, known));
  return factory();
}

std::int64_t non_negative_option(const ValueMap& o, const char* name, const std::string& who) {
  const std::int64_t v = std::get<std::int64_t>(o.at(name));
  if (v < 0) throw Error(fmt::format("{}: option {} must be >= 0, got {}", who, name, v));
  return v;
}

ValueMap resolve_options(const AttributionMethod& method, const ValueMap& given) {
  ValueMap resolved = method.default_options();
  for (const auto& [key, value] : given) {
    auto it = resolved.find(key);
    if (it == resolved.end()) {
      std::string known;
      for (const auto& [k, _] : resolved) known += (known.empty() ? "" : ", ") + k;
      throw Error(fmt::format("method \"{}\": unknown option \"{}\" (options: {})", method.name(), key, known));
    }
    Value v = value;
    // An integer given where a double is expected is a number all the same.
    if (std::holds_alternative<double>(it->second) && std::holds_alternative<std::int64_t>(v))
      v = static_cast<double>(std::get<std::int64_t>(v));
    if (v.index() != it->second.index() && !std::holds_alternative<std::monostate>(it->second)) {
      const auto docs = method.option_docs();
      const auto doc = docs.find(key);
      throw Error(fmt::format("method \"{}\": option {} expects {} like {}, got {}{}", method.name(), key,
                              std::holds_alternative<bool>(it->second)      ? "a boolean"
                              : std::holds_alternative<std::int64_t>(it->second) ? "an integer"
                              : std::holds_alternative<double>(it->second)  ? "a number"
                              : std::holds_alternative<IntList>(it->second) ? "a list of integers"
                                                                             : "a string",
                              to_string(it->second), to_string(v),
                              doc == docs.end() ? "" : " (" + doc->second + ")"));
    }
    it->second = v;
  }
  return resolved;
}

}  // namespace anchors
