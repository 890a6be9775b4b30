#include "service/cli/common.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "models/errors.hpp"

namespace marginet::cli {

void add_common_options(CLI::App& app, CommonOptions& opts) {
  app.add_option("--device", opts.device, "Compute device: auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  app.add_option("--threads", opts.threads, "CPU backend worker threads (0 = all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--format", opts.format, "Output format: csv or json")
      ->check(CLI::IsMember({"csv", "json"}))
      ->capture_default_str();
  app.add_option("--out", opts.out, "Write results to FILE instead of stdout");
  app.add_flag("--quiet", opts.quiet, "No progress or log lines on stderr");
}

Backend resolve_backend(const CommonOptions& opts) {
  set_cpu_threads(opts.threads);
  const Backend backend = select_backend(parse_device_choice(opts.device));
  if (!opts.quiet) spdlog::info("backend {}: {}", backend_name(backend), describe_device(backend));
  return backend;
}

OutputSink::OutputSink(const std::string& path) : out_(&std::cout) {
  if (!path.empty()) {
    file_ = std::make_unique<std::ofstream>(path);
    if (!*file_) throw input_error(path, 0, "", "cannot open for writing");
    out_ = file_.get();
  }
}

Progress::Progress(std::string label, std::size_t total, bool quiet)
    : label_(std::move(label)), total_(total), enabled_(!quiet && isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() { finish(); }

void Progress::advance(std::size_t done) {
  if (!enabled_ || finished_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  const double pct = total_ ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100.0;
  std::fprintf(stderr, "\r%s: %zu/%zu (%.0f%%)", label_.c_str(), done, total_, pct);
  std::fflush(stderr);
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  std::fprintf(stderr, "\r%s: done%*s\n", label_.c_str(), 24, "");
}

}  // namespace marginet::cli
