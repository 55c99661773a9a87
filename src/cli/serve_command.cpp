#include "serve_command.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <mutex>
#include <ostream>
#include <thread>

#include <fmt/format.h>
#include <torch/cuda.h>

#include "anchors/cli.h"
#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/prompt.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/local_provider.h"
#include "anchors/rollout/server.h"
#include "cli_args.h"
#include "model_commands.h"

namespace anchors::cli {
namespace {

const char* kServeUsage =
    "usage: anchors serve --model DIR [--port P] [--dtype float32|bfloat16|float16] [--device cpu|cuda]\n"
    "                     [--name NAME] [--max-n N] [--chat-format raw|deepseek_r1|qwen3]\n"
    "                     [--workers N] [--max-connections N] [--max-queue N]\n\n"
    "Serve a checkpoint folder as an OpenAI-compatible completions endpoint on 127.0.0.1:\n"
    "POST /v1/completions (prompt as token ids or text, n, temperature, top_p, top_k, min_p,\n"
    "repetition_penalty, max_tokens, stop, seed; choices carry a token_ids extension),\n"
    "POST /v1/chat/completions (one user message, optionally the assistant's partial message with\n"
    "continue_final_message: true) and GET /v1/models. Requests run one at a time, so a request\n"
    "gives exactly what the library's LocalProvider gives for the same seed.\n"
    "Runs until interrupted (Ctrl-C or SIGTERM).\n\n"
    "  --port P      port on 127.0.0.1 (default 8000; 0 picks a free one)\n"
    "  --dtype T     weights and activations (default float32 on cpu, bfloat16 on cuda)\n"
    "  --device D    cpu or cuda (default cuda when available)\n"
    "  --name NAME   the model name /v1/models lists (default the folder's name)\n"
    "  --max-n N     largest n accepted per request (default 1024)\n"
    "  --chat-format F  how chat messages become a prompt: the library's prompt format F\n"
    "                (default raw: the reference prompt around the user message), not the\n"
    "                checkpoint's Jinja chat template\n"
    "  --workers N   threads that take requests (default max(4, cores)); completions still\n"
    "                run one at a time\n"
    "  --max-connections N  open connections (default 512); more are answered 503\n"
    "  --max-queue N  requests waiting for a worker (default 256); more are answered 503\n\n"
    "Slow clients cannot hold the server: request headers must arrive within 10 s and a\n"
    "body within 60 s (then 408), bodies over 16 MiB are refused (413).\n";

std::atomic<bool> g_stop_requested{false};
extern "C" void on_stop_signal(int) { g_stop_requested.store(true); }

torch::Dtype parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32") return torch::kFloat32;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  if (name == "float16" || name == "fp16") return torch::kFloat16;
  throw UsageError(fmt::format("--dtype {}: expected float32, bfloat16 or float16", name));
}

// Installs SIGINT/SIGTERM handlers for its lifetime and restores the old ones.
class StopSignals {
 public:
  StopSignals() {
    g_stop_requested.store(false);
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

int run_serve(const std::vector<std::string>& raw, std::istream&, std::ostream& out, std::ostream& err) {
  Args args(raw, {}, {"model", "port", "dtype", "device", "name", "max-n", "chat-format", "workers",
                      "max-connections", "max-queue"});
  args.expect_positionals(0, "no positional arguments (use --model DIR)");
  const auto dir = args.option("model");
  if (!dir) throw UsageError("--model DIR is required");
  if (!directory_exists(*dir)) throw Error(fmt::format("{}: no such directory", *dir));
  const long port = args.integer_or("port", 8000);
  if (port < 0 || port > 65535) throw UsageError(fmt::format("--port {} outside [0, 65535]", port));
  const long max_n = args.integer_or("max-n", 1024);
  if (max_n < 1) throw UsageError(fmt::format("--max-n {} < 1", max_n));
  const long workers = args.integer_or("workers", 0);
  if (workers < 0 || workers > 4096)
    throw UsageError(fmt::format("--workers {} outside [0, 4096] (0: the default)", workers));
  const long max_connections = args.integer_or("max-connections", 512);
  if (max_connections < 1 || max_connections > 1000000)
    throw UsageError(fmt::format("--max-connections {} outside [1, 1000000]", max_connections));
  const long max_queue = args.integer_or("max-queue", 256);
  if (max_queue < 0 || max_queue > 1000000)
    throw UsageError(fmt::format("--max-queue {} outside [0, 1000000]", max_queue));
  model::PromptFormat chat_format = model::PromptFormat::kRaw;
  try {
    chat_format = model::parse_prompt_format(args.option_or("chat-format", "raw"));
  } catch (const Error& e) {
    throw UsageError(fmt::format("--chat-format: {}", e.what()));
  }

  const std::string device_name = args.option_or("device", torch::cuda::is_available() ? "cuda" : "cpu");
  if (device_name != "cpu" && device_name != "cuda")
    throw UsageError(fmt::format("--device {}: expected cpu or cuda", device_name));
  if (device_name == "cuda" && !torch::cuda::is_available()) throw Error("--device cuda: no CUDA device available");
  model::LoadOptions load;
  load.device = device_name == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  const std::string dtype_name = args.option_or("dtype", device_name == "cuda" ? "bfloat16" : "float32");
  load.dtype = parse_dtype(dtype_name);

  const auto model = model::CausalLM::load(*dir, load);
  auto provider = std::make_shared<rollout::LocalProvider>(model);

  std::filesystem::path folder = std::filesystem::path(*dir).lexically_normal();
  if (folder.filename().empty()) folder = folder.parent_path();
  rollout::ServerOptions options;
  options.port = static_cast<int>(port);
  options.model_name = args.option_or("name", folder.filename().string());
  options.max_n = max_n;
  options.workers = static_cast<int>(workers);
  options.max_connections = static_cast<int>(max_connections);
  options.max_queue = static_cast<int>(max_queue);
  if (const auto tokenizer = model->tokenizer()) {
    // As OpenAI-compatible servers do: text prompts get the tokenizer's special tokens (e.g. BOS).
    options.tokenize = [tokenizer](const std::string& text) { return tokenizer->encode(text, true).ids; };
    options.token_text = [tokenizer](std::int64_t id) { return tokenizer->decode({id}, false); };
    options.render_chat = rollout::chat_renderer(tokenizer, chat_format);
  }
  auto log_mutex = std::make_shared<std::mutex>();
  options.log = [&err, log_mutex](const std::string& line) {
    std::lock_guard lock(*log_mutex);
    err << "anchors serve: " << line << "\n";
    err.flush();
  };

  StopSignals signals;
  rollout::CompletionServer server(provider, options);
  server.start();
  out << fmt::format("anchors serve: {} as \"{}\" ({}, {}) on {}/v1 -- Ctrl-C to stop\n", *dir, options.model_name,
                     device_name, dtype_name, server.url());
  out.flush();
  while (!g_stop_requested.load() && server.running()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server.stop();
  out << "anchors serve: stopped\n";
  out.flush();
  return 0;
}

}  // namespace

void register_serve_command() {
  register_model_command({"serve", "serve a model as an OpenAI-compatible /v1/completions endpoint on loopback",
                        kServeUsage, run_serve});
}

}  // namespace anchors::cli
