#include "service/db/writer_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "models/errors.hpp"

namespace marginet {

namespace {

/// The pid written by the current holder, or "" when unreadable.
std::string read_holder_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return "";
  std::string s(buf, static_cast<std::size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char c : s)
    if (c < '0' || c > '9') return "";
  return s;
}

}  // namespace

std::string WriterLock::lock_path_for(const std::string& database_path) {
  return database_path + "-writer.lock";
}

WriterLock::WriterLock(const std::string& database_path, const std::string& what)
    : lock_path_(lock_path_for(database_path)) {
  fd_ = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw input_error(database_path, 0, "",
                      "cannot create the writer lock " + lock_path_ + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string pid = read_holder_pid(fd_);
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw input_error(what + " " + database_path + " is locked by another writer" +
                        (pid.empty() ? std::string() : " (pid " + pid + ")"));
    throw input_error(database_path, 0, "", "cannot lock " + lock_path_ + ": " + std::strerror(err));
  }
  // Ours: record the pid for the next one who is refused (best effort, not part of the lock).
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t n = ::pwrite(fd_, pid.data(), pid.size(), 0);
  }
}

WriterLock::~WriterLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace marginet
