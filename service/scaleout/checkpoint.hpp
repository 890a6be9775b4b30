#pragma once
// Finished partitions of a distributed run, kept on disk so that a rerun after a failure
// (Open MPI 4.1 has no recovery inside a job: one dead rank ends it) computes only what is
// missing. One file per partition, `part-<p>-of-<P>.bin`, written whole or not at all (a
// temporary file, fsync, rename, fsync of the folder) and bound to the inputs by a key: a file
// written for other inputs, for another partition count, or damaged is not used.

#include <optional>
#include <string>

namespace marginet::scaleout {

class CheckpointDir {
 public:
  /// Creates `dir` when missing (several ranks may do so at once).
  explicit CheckpointDir(std::string dir);

  const std::string& path() const { return dir_; }
  /// Keeps partition `p` of `partitions`: `records` under `key` (64 hex digits).
  void write(std::size_t p, std::size_t partitions, const std::string& key, const std::string& records) const;
  /// The records kept for partition `p` under `key`; nullopt when there are none, and then
  /// `why` says why (absent, other inputs, damaged).
  std::optional<std::string> read(std::size_t p, std::size_t partitions, const std::string& key,
                                  std::string& why) const;
  /// Removes every partition file, then the folder when it is left empty.
  void remove_all() const;

 private:
  std::string file(std::size_t p, std::size_t partitions) const;
  std::string dir_;
};

}  // namespace marginet::scaleout
