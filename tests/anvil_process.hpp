#pragma once
// A real local EVM node for the tests: anvil from the npm package that scripts/evm/setup.sh
// installs into BUILD/evm (MARGINET_EVM_DIR), started on a free loopback port and stopped on
// destruction (it dies with the test process too). The compiled contracts are
// MARGINET_EVM_DIR/contracts.json. A test without them skips visibly:
//
//   SKIP_WITHOUT_ANVIL();   // first line of the test's body (GTEST_SKIP returns from the body)

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "service/settlement/evm/evm_node.hpp"

namespace marginet::testing {

inline std::string evm_tools_dir() { return MARGINET_EVM_DIR; }
inline std::string anvil_binary() { return evm_tools_dir() + "/node_modules/.bin/anvil"; }
inline std::string evm_contracts_file() { return evm_tools_dir() + "/contracts.json"; }

inline bool anvil_available() {
  struct stat st {};
  return stat(anvil_binary().c_str(), &st) == 0 && stat(evm_contracts_file().c_str(), &st) == 0;
}

#define SKIP_WITHOUT_ANVIL()                                                                          \
  if (!::marginet::testing::anvil_available())                                                       \
  GTEST_SKIP() << "no local EVM node: run scripts/evm/setup.sh BUILD_DIR (npm: anvil, solc) to run " \
                  "the evm tests"

inline int free_tcp_port() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(s);
    throw std::runtime_error("no free port");
  }
  const int port = ntohs(a.sin_port);
  close(s);
  return port;
}

class AnvilProcess {
 public:
  /// `extra`: more anvil flags ("--no-mining", "--block-time 1", "--chain-id 31338").
  explicit AnvilProcess(const std::string& extra = "") {
    for (int attempt = 0; attempt < 3 && pid_ < 0; ++attempt) {
      port_ = free_tcp_port();
      const std::string cmd = "exec " + anvil_binary() + " --host 127.0.0.1 --port " + std::to_string(port_) +
                              " --silent " + (extra.find("--accounts") == std::string::npos ? "--accounts 10 " : "") +
                              extra;
      pid_ = fork();
      if (pid_ < 0) throw std::runtime_error("fork failed");
      if (pid_ == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
        _exit(127);
      }
      url_ = "http://127.0.0.1:" + std::to_string(port_);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      bool up = false;
      while (!up && std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) break;  // exited (port taken): try again
        try {
          evm::EvmNode probe(url_, 1);
          probe.block_number();
          up = true;
        } catch (const std::exception&) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
      if (!up) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
      }
    }
    if (pid_ < 0) throw std::runtime_error("anvil did not start (" + anvil_binary() + ")");
  }
  ~AnvilProcess() { stop(); }
  AnvilProcess(const AnvilProcess&) = delete;
  AnvilProcess& operator=(const AnvilProcess&) = delete;

  const std::string& url() const { return url_; }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string url_;
};

}  // namespace marginet::testing
