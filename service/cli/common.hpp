#pragma once
// What every subcommand shares: the common flags (SPEC §2), output sinks and progress lines.

#include <CLI/CLI.hpp>

#include <chrono>
#include <fstream>
#include <iosfwd>
#include <memory>
#include <stdexcept>
#include <string>

#include "host/backend.hpp"

namespace spdlog {
class logger;
}

namespace marginet::cli {

/// A run that did its work and found it failed (a step of the demo's day): main() prints
/// "marginet: WHAT" and exits 1, without calling it an internal error.
class run_failed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CommonOptions {
  std::string device = "auto";
  std::string on_device_error = "refuse";  // after a sticky CUDA error: refuse | cpu
  int threads = 0;
  std::string format = "auto";  // auto: an aligned table on a terminal, csv otherwise
  std::string out;
  bool quiet = false;
};

/// Adds --device, --on-device-error, --threads, --format, --out, --quiet to `app` (inherited by subcommands).
void add_common_options(CLI::App& app, CommonOptions& opts);

/// Applies --threads and resolves --device; logs the choice unless --quiet.
Backend resolve_backend(const CommonOptions& opts);

/// --out FILE or stdout.
class OutputSink {
 public:
  explicit OutputSink(const std::string& path);
  std::ostream& stream() { return *out_; }

 private:
  std::unique_ptr<std::ofstream> file_;
  std::ostream* out_;
};

/// The logger the binary logs through: lines on stderr (level coloured on a terminal) that share
/// the terminal with the progress line: a log line clears the progress line and redraws it
/// after, from any thread, so the two never interleave.
std::shared_ptr<spdlog::logger> make_console_logger(const std::string& name);

/// A progress line on stderr, drawn only when stderr is a terminal and not --quiet.
class Progress {
 public:
  Progress(std::string label, std::size_t total, bool quiet);
  ~Progress();
  void advance(std::size_t done);
  void finish();

 private:
  std::string label_;
  std::size_t total_;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point last_;
};

/// The subcommands. Each registers itself on `app` and runs from its callback.
void add_demo_command(CLI::App& app, CommonOptions& opts);
void add_margin_command(CLI::App& app, CommonOptions& opts);
void add_whatif_command(CLI::App& app, CommonOptions& opts);
void add_scheduler_command(CLI::App& app, CommonOptions& opts);
void add_ledger_command(CLI::App& app, CommonOptions& opts);
void add_net_command(CLI::App& app, CommonOptions& opts);
void add_contagion_command(CLI::App& app, CommonOptions& opts);  // cmd_contagion.cpp
void add_greeks_command(CLI::App& app, CommonOptions& opts);
void add_serve_command(CLI::App& app, CommonOptions& opts);
void add_client_command(CLI::App& app, CommonOptions& opts);
void add_keygen_command(CLI::App& app, CommonOptions& opts);
void add_trades_command(CLI::App& app, CommonOptions& opts);     // cmd_trades.cpp
void add_positions_command(CLI::App& app, CommonOptions& opts);  // cmd_trades.cpp
void add_members_command(CLI::App& app, CommonOptions& opts);    // cmd_members.cpp
void add_accounts_command(CLI::App& app, CommonOptions& opts);   // cmd_members.cpp
void add_calls_command(CLI::App& app, CommonOptions& opts);      // cmd_calls.cpp
void add_collateral_command(CLI::App& app, CommonOptions& opts); // cmd_calls.cpp
void add_default_fund_command(CLI::App& app, CommonOptions& opts); // cmd_default.cpp
void add_default_command(CLI::App& app, CommonOptions& opts);      // cmd_default.cpp
void add_evm_command(CLI::App& app, CommonOptions& opts);          // cmd_evm.cpp

}  // namespace marginet::cli
