// One-process communicator and the choice between it and MPI (mpi_communicator.cpp).

#include "service/scaleout/communicator.hpp"

#include <cstdlib>

#include "models/errors.hpp"

namespace marginet::scaleout {

#if MARGINET_HAVE_MPI
std::unique_ptr<Communicator> make_mpi_communicator();  // mpi_communicator.cpp
#endif

namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string describe() const override { return "one process"; }
  std::string scatter(const std::vector<std::string>& parts, int) override {
    MARGINET_EXPECTS(parts.size() == 1, "one part per rank");
    return parts[0];
  }
  std::vector<std::string> gather(const std::string& mine, int) override { return {mine}; }
  std::string broadcast(const std::string& bytes, int) override { return bytes; }
};

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}

}  // namespace

bool launched_as_rank() {
  // Open MPI's mpirun, PMIx (srun --mpi=pmix, prterun) and PMI-1/2 (srun --mpi=pmi2).
  return env_set("OMPI_COMM_WORLD_SIZE") || env_set("PMIX_RANK") || env_set("PMI_RANK");
}

int launched_ranks() {
  if (!launched_as_rank()) return 1;
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "SLURM_NTASKS"}) {
    const char* v = std::getenv(name);
    if (v != nullptr && std::atoi(v) > 0) return std::atoi(v);
  }
  return 1;
}

bool mpi_built() {
#if MARGINET_HAVE_MPI
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_single_process() { return std::make_unique<SingleProcess>(); }

std::unique_ptr<Communicator> make_communicator() {
  if (!launched_as_rank()) return make_single_process();
#if MARGINET_HAVE_MPI
  return make_mpi_communicator();
#else
  // A launcher's one-rank job (mpirun -np 1) is harmless; more ranks would each run everything.
  if (launched_ranks() > 1)
    throw usage_error("started as one of " + std::to_string(launched_ranks()) +
                      " ranks, but this marginet was built without MPI (-DMARGINET_MPI=ON, Open MPI installed)");
  return make_single_process();
#endif
}

}  // namespace marginet::scaleout
