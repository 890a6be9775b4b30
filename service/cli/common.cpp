#include "service/cli/common.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <mutex>

#include "models/errors.hpp"

namespace marginet::cli {

void add_common_options(CLI::App& app, CommonOptions& opts) {
  app.add_option("--device", opts.device, "Compute device: auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  app.add_option("--on-device-error", opts.on_device_error,
                 "After the CUDA context becomes unusable (a sticky error): refuse device work "
                 "(requests get `internal`) or compute on the cpu from then on")
      ->check(CLI::IsMember({"refuse", "cpu"}))
      ->capture_default_str();
  app.add_option("--threads", opts.threads, "CPU backend worker threads (0 = all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--format", opts.format, "Output format: auto (an aligned table on a terminal, else csv), table, csv or json")
      ->check(CLI::IsMember({"auto", "table", "csv", "json"}))
      ->capture_default_str();
  app.add_option("--out", opts.out, "Write results to FILE instead of stdout");
  app.add_flag("--quiet", opts.quiet, "No progress or log lines on stderr");
}

Backend resolve_backend(const CommonOptions& opts) {
  set_cpu_threads(opts.threads);
  set_device_error_policy(parse_device_error_policy(opts.on_device_error));
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

namespace {

// The terminal's stderr is shared by the log sink and the progress line: both draw under this
// lock, and the sink knows the line to redraw.
std::mutex console_mutex;
std::string progress_line;  // the progress line now drawn, empty when none

class ConsoleSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  ConsoleSink() : colour_(isatty(STDERR_FILENO) == 1) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t text;
    formatter_->format(msg, text);
    const std::string_view line(text.data(), text.size());
    std::lock_guard<std::mutex> lock(console_mutex);
    if (!progress_line.empty()) std::fputs("\r\033[K", stderr);
    if (colour_ && msg.color_range_end > msg.color_range_start) {
      std::fwrite(line.data(), 1, msg.color_range_start, stderr);
      std::fputs(level_colour(msg.level), stderr);
      std::fwrite(line.data() + msg.color_range_start, 1, msg.color_range_end - msg.color_range_start, stderr);
      std::fputs("\033[0m", stderr);
      std::fwrite(line.data() + msg.color_range_end, 1, line.size() - msg.color_range_end, stderr);
    } else {
      std::fwrite(line.data(), 1, line.size(), stderr);
    }
    if (!progress_line.empty()) std::fputs(progress_line.c_str(), stderr);
    std::fflush(stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  static const char* level_colour(spdlog::level::level_enum level) {
    switch (level) {
      case spdlog::level::warn: return "\033[33m\033[1m";
      case spdlog::level::err:
      case spdlog::level::critical: return "\033[31m\033[1m";
      case spdlog::level::info: return "\033[32m";
      default: return "\033[36m";
    }
  }
  bool colour_;
};

}  // namespace

std::shared_ptr<spdlog::logger> make_console_logger(const std::string& name) {
  return std::make_shared<spdlog::logger>(name, std::make_shared<ConsoleSink>());
}

Progress::Progress(std::string label, std::size_t total, bool quiet)
    : label_(std::move(label)), total_(total), enabled_(!quiet && isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() { finish(); }

void Progress::advance(std::size_t done) {
  if (!enabled_ || finished_) return;
  const double pct = total_ ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100.0;
  char buf[64];
  std::snprintf(buf, sizeof buf, ": %zu/%zu (%.0f%%)", done, total_, pct);
  std::lock_guard<std::mutex> lock(console_mutex);
  progress_line = label_ + buf;  // what a log line redraws, current even when not drawn now
  const auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_ < std::chrono::milliseconds(100)) return;  // at most 10 draws a second
  last_ = now;
  std::fprintf(stderr, "\r\033[K%s", progress_line.c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  std::lock_guard<std::mutex> lock(console_mutex);
  progress_line.clear();
  std::fprintf(stderr, "\r\033[K%s: done\n", label_.c_str());
  std::fflush(stderr);
}

}  // namespace marginet::cli
