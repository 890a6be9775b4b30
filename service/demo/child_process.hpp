#pragma once
// A component of the clearing day started as a child process of this binary (`marginet serve`,
// `marginet scheduler`): its stdout and stderr go to a log file, so that they never mix with the
// terminal; it dies with its parent (PR_SET_PDEATHSIG), and stop() ends it with SIGTERM, a
// bounded wait, then SIGKILL. Nothing is left running when the object is destroyed.

#include <sys/types.h>

#include <string>
#include <vector>

namespace marginet::demo {

class ChildProcess {
 public:
  /// Runs `/proc/self/exe ARGS…` (this binary) with its output appended to `log_path`.
  ChildProcess(std::string name, const std::vector<std::string>& args, std::string log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  /// Waits until the log holds "listening on ENDPOINT" and returns ENDPOINT; std::runtime_error
  /// naming the log when the child exits or `timeout_ms` passes first.
  std::string wait_for_endpoint(int timeout_ms);
  /// SIGTERM, up to `wait_ms` for the exit, then SIGKILL. The exit code; −1 when a signal ended
  /// it, −2 when it had to be killed. Idempotent.
  int stop(int wait_ms = 15'000);
  bool running();

  const std::string& name() const { return name_; }
  const std::string& log_path() const { return log_path_; }

 private:
  std::string name_, log_path_;
  pid_t pid_ = -1;
  int exit_code_ = 0;
};

}  // namespace marginet::demo
