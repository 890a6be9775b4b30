#pragma once
// A real local EVM node for the tests: anvil from the npm package that scripts/evm/setup.sh
// installs into BUILD/evm (MARGINET_EVM_DIR), started on a loopback port the kernel picks and stopped on
// destruction (it dies with the test process too). The compiled contracts are
// MARGINET_EVM_DIR/contracts.json. A test without them skips visibly:
//
//   SKIP_WITHOUT_ANVIL();   // first line of the test's body (GTEST_SKIP returns from the body)

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
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

class AnvilProcess {
 public:
  /// `extra`: more anvil flags ("--no-mining", "--block-time 1", "--chain-id 31338").
  /// anvil binds a port the kernel picks (--port 0) and the URL comes from its own "Listening
  /// on" line: two tests starting nodes at once can never end up talking to the same one.
  explicit AnvilProcess(const std::string& extra = "") {
    static int serial = 0;
    log_ = (std::filesystem::temp_directory_path() / ("marginet_anvil_" + std::to_string(getpid()) + "_" + std::to_string(++serial) + ".log")).string();
    const std::string cmd = "exec " + anvil_binary() + " --host 127.0.0.1 --port 0 " +
                            (extra.find("--accounts") == std::string::npos ? "--accounts 10 " : "") + extra + " > " +
                            log_ + " 2>&1";
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    const std::string marker = "Listening on ";
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::ifstream in(log_);
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string text = ss.str();
      const auto at = text.find(marker);
      const auto end = at == std::string::npos ? at : text.find('\n', at);
      if (end != std::string::npos) {
        url_ = "http://" + text.substr(at + marker.size(), end - at - marker.size());
        evm::EvmNode probe(url_, 2);
        probe.block_number();  // answers
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    stop();
    throw std::runtime_error("anvil did not start (" + anvil_binary() + "); see " + log_);
  }
  ~AnvilProcess() {
    stop();
    std::remove(log_.c_str());
  }
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
  std::string url_, log_;
};

}  // namespace marginet::testing
