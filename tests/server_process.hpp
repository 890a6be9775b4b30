#pragma once
// Starts the real `marginet serve` as a child process on a free loopback port (it binds
// tcp://127.0.0.1:* and prints the endpoint it got), and ends it on destruction: SIGTERM, a
// bounded wait, then SIGKILL. Used by tests/test_server.cpp and tests/test_python_client.cpp.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace marginet::testing {

class ServerProcess {
 public:
  /// `args` follow `marginet serve`; --bind tcp://127.0.0.1:* is added.
  explicit ServerProcess(const std::string& args, int start_timeout_ms = 60'000) {
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe failed");
    const std::string cmd = std::string("exec ") + MARGINET_EXE + " serve --bind 'tcp://127.0.0.1:*' " + args;
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // The server dies with the test process, even when the test crashes before its teardown.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    fd_ = out[0];
    // Read stdout until "listening on ENDPOINT\n".
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(start_timeout_ms);
    const std::string marker = "listening on ";
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[512];
      const ssize_t n = read(fd_, buf, sizeof buf);
      if (n <= 0) break;  // the server exited
      output_.append(buf, static_cast<std::size_t>(n));
      const auto at = output_.find(marker);
      if (at != std::string::npos) {
        const auto end = output_.find('\n', at);
        if (end != std::string::npos) {
          endpoint_ = output_.substr(at + marker.size(), end - at - marker.size());
          return;
        }
      }
    }
    stop(SIGKILL);
    throw std::runtime_error("marginet serve did not start: " + output_);
  }
  ~ServerProcess() { stop(SIGTERM); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  const std::string& endpoint() const { return endpoint_; }
  pid_t pid() const { return pid_; }

  /// Sends `sig` and waits (bounded) for the exit; returns the exit code, −1 for a signal death,
  /// −2 when it had to be killed.
  int stop(int sig = SIGTERM, int wait_ms = 15'000) {
    if (pid_ <= 0) return exit_code_;
    kill(pid_, sig);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    int status = 0;
    while (true) {
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        exit_code_ = -2;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    if (fd_ >= 0) close(fd_), fd_ = -1;
    return exit_code_;
  }

  /// Resident memory of the server in KiB (from /proc), 0 when unknown.
  long rss_kib() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string key;
    while (in >> key) {
      if (key == "VmRSS:") {
        long v = 0;
        in >> v;
        return v;
      }
      std::getline(in, key);
    }
    return 0;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  int exit_code_ = -1;
  std::string output_, endpoint_;
};

}  // namespace marginet::testing
