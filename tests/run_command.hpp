#pragma once
// Run the real `marginet` binary (or any command) and capture its exit status and output.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <spawn.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

extern char** environ;

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

/// A folder of this test process's own under gtest's TempDir(). ctest runs every test as a
/// process of its own, in parallel: two tests writing the same fixed file name would read each
/// other's half-written files.
inline std::string scratch_dir() {
  const std::string dir = ::testing::TempDir() + "/marginet_test_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  return dir;
}

/// `marginet ARGS`, stdout and stderr merged unless told otherwise.
inline CommandResult run_marginet(const std::string& args, bool merge_stderr = true) {
  return run_command(std::string(MARGINET_EXE) + " " + args, merge_stderr);
}

/// Starts `marginet ARGS` in the background (crash tests kill it), its stdout and stderr
/// appended to `log` (emptied first when `truncate`). The pid; −1 when it could not start.
inline pid_t spawn_marginet(const std::vector<std::string>& args, const std::string& log, bool truncate = false) {
  std::vector<std::string> copy = args;
  std::string exe = MARGINET_EXE;
  std::vector<char*> argv{exe.data()};
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | (truncate ? O_TRUNC : O_APPEND), 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

}  // namespace marginet::testing
