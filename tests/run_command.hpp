#pragma once
// Run the real `marginet` binary (or any command) and capture its exit status and output.

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace marginet::testing {

struct CommandResult {
  int status;          // exit code; -1 when killed by a signal
  std::string output;  // stdout (and stderr when merged)
};

inline CommandResult run_command(const std::string& cmd, bool merge_stderr = true) {
  const std::string full = cmd + (merge_stderr ? " 2>&1" : "");
  FILE* pipe = popen(full.c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::string out;
  std::array<char, 4096> buf{};
  while (std::size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  const int raw = pclose(pipe);
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, out};
}

/// `marginet ARGS`, stdout and stderr merged unless told otherwise.
inline CommandResult run_marginet(const std::string& args, bool merge_stderr = true) {
  return run_command(std::string(MARGINET_EXE) + " " + args, merge_stderr);
}

}  // namespace marginet::testing
