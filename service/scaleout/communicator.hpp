#pragma once
// The processes of one distributed run (SPEC §12): this process's rank among them and the few
// collective operations the end-of-day run needs, over byte strings of any size. Under a
// launcher (`mpirun`, `srun --mpi=pmix`) that is MPI; otherwise one process, and every
// operation is a copy. No MPI type appears here: callers stay the same without MPI.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace marginet::scaleout {

/// What this rank spent in communication: bytes it sent and received, seconds inside the
/// collective calls (waiting for slower ranks included), and how many calls it made.
struct CommStats {
  std::uint64_t bytes_sent = 0, bytes_received = 0;
  double seconds = 0;
  std::uint64_t calls = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// This rank's index among the ranks on its machine: the GPU it takes.
  virtual int local_rank() const = 0;
  /// "one process" or the MPI library and launcher, for logs.
  virtual std::string describe() const = 0;

  /// At `root`: parts[r] goes to rank r (parts.size() == size()); elsewhere `parts` is ignored.
  /// Returns this rank's part.
  virtual std::string scatter(const std::vector<std::string>& parts, int root) = 0;
  /// Every rank's `mine` at `root`, in rank order; an empty vector elsewhere.
  virtual std::vector<std::string> gather(const std::string& mine, int root) = 0;
  /// `bytes` of `root` on every rank.
  virtual std::string broadcast(const std::string& bytes, int root) = 0;

  const CommStats& stats() const { return stats_; }
  /// No rank will make another collective call (the run ended, or every rank agreed to fail):
  /// an exception from here on may end this process alone. Before it, an exception that leaves
  /// the communicator aborts the whole job, since the other ranks would wait for ever.
  void collectives_done() { done_ = true; }

 protected:
  CommStats stats_;
  bool done_ = false;
};

/// The communicator of this process: MPI when a launcher started it (Open MPI's, Slurm's PMIx
/// or PMI environment) and the build has MPI, else one process. MPI is initialised on the first
/// call and finalised when the returned object goes. A launcher with a build without MPI is a
/// usage_error (every rank would run the whole book and write the same file).
std::unique_ptr<Communicator> make_communicator();

/// One process: rank 0 of 1.
std::unique_ptr<Communicator> make_single_process();

/// True when a launcher's environment says this process is one rank of several.
bool launched_as_rank();

/// The number of ranks a launcher started (from its environment, without starting MPI); 1 when
/// none did.
int launched_ranks();

/// Built with MPI (MARGINET_MPI found Open MPI).
bool mpi_built();

}  // namespace marginet::scaleout
