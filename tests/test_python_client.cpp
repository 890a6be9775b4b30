// Runs tests/test_python_client.py (the Python client against the real `marginet serve`) from
// CTest on a generated book. Skips visibly when python3 with zmq and msgpack is missing.

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "host/book_generator.hpp"
#include "tests/run_command.hpp"

namespace marginet {
namespace {

TEST(PythonClient, AgainstTheRealServer) {
  // Debian's interpreter first: python3-zmq and python3-msgpack install there (a python3 earlier
  // on PATH, e.g. from pyenv, may lack them).
  std::string python;
  for (const char* candidate : {"/usr/bin/python3", "python3"})
    if (testing::run_command(std::string(candidate) + " -c 'import zmq, msgpack'").status == 0) {
      python = candidate;
      break;
    }
  if (python.empty()) GTEST_SKIP() << "python3 with zmq and msgpack (python3-zmq, python3-msgpack) not installed";
  const std::string dir = ::testing::TempDir() + "/marginet_python_client_" + std::to_string(getpid());
  BookSpec spec;
  spec.underlyings = 2;
  spec.instruments = 80;
  spec.accounts = 6;
  spec.positions = 150;
  write_book(generate_book(spec), dir);
  const std::string cmd = std::string("MARGINET_EXE=") + MARGINET_EXE + " MARGINET_DATA=" + dir +
                          " MARGINET_SOURCE_DIR=" + MARGINET_SOURCE_DIR + " timeout 300 " + python + " " +
                          MARGINET_SOURCE_DIR + "/tests/test_python_client.py";
  const auto r = testing::run_command(cmd);
  EXPECT_EQ(r.status, 0) << r.output;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace marginet
