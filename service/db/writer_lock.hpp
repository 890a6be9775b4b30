#pragma once
// The single-writer lock of a durable store (the clearing store; the settlement ledger may reuse
// it): an exclusive, non-blocking flock(2) on a sidecar file `<database>-writer.lock`, held by an
// open file descriptor for the life of the WriterLock. The holder writes its pid into the file
// so that a refused writer can say who holds it:
//
//   WriterLock lock(path, "clearing store");   // throws input_error when another writer holds it
//   //  -> "clearing store /data/clearing.sqlite is locked by another writer (pid 4242)"
//
// Why a sidecar and not the database file itself: SQLite keeps POSIX (fcntl) locks on the
// database file, and POSIX locks of a process are dropped when *any* descriptor of that process
// on the file is closed. Opening and closing our own descriptor on the database (a refused
// second writer in the same process does exactly that) would silently release SQLite's locks.
// The sidecar is never opened by SQLite, so the two lock families cannot interfere.
//
// The lock is released by the kernel when the process dies (kill -9 included): no stale locks.
// The sidecar file stays on disk (like -wal and -shm); do not delete it while a writer runs.
// Readers take no lock. flock works between processes and between two WriterLocks of one
// process alike (each has its own open file description).

#include <string>

namespace marginet {

class WriterLock {
 public:
  /// Takes the lock of `database_path` (creating the sidecar when absent). `what` names the store
  /// in the error ("clearing store"). input_error when another writer holds it, or when the
  /// sidecar cannot be created (directory missing or read-only).
  WriterLock(const std::string& database_path, const std::string& what);
  ~WriterLock();
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

  /// The sidecar that carries the lock: `<database_path>-writer.lock`.
  static std::string lock_path_for(const std::string& database_path);
  const std::string& lock_path() const { return lock_path_; }

 private:
  int fd_ = -1;
  std::string lock_path_;
};

}  // namespace marginet
