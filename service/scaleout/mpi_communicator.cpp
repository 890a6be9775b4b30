// The MPI communicator (built when MARGINET_MPI finds Open MPI). Payloads of any size: sizes
// travel first as 64-bit counts, the bytes in pieces of at most 1 GiB (MPI counts are int).
// Open MPI 4.1 in Debian is not CUDA-aware: everything here is host memory.

#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "models/errors.hpp"
#include "service/scaleout/communicator.hpp"

namespace marginet::scaleout {

namespace {

constexpr std::size_t kPiece = std::size_t{1} << 30;
constexpr int kTag = 7117;

class Timed {
 public:
  explicit Timed(CommStats& s) : s_(s), t0_(std::chrono::steady_clock::now()) {}
  ~Timed() {
    s_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    ++s_.calls;
  }

 private:
  CommStats& s_;
  std::chrono::steady_clock::time_point t0_;
};

void send_bytes(const std::string& bytes, int to) {
  for (std::size_t at = 0; at < bytes.size(); at += kPiece) {
    const std::size_t n = std::min(kPiece, bytes.size() - at);
    MPI_Send(bytes.data() + at, static_cast<int>(n), MPI_BYTE, to, kTag, MPI_COMM_WORLD);
  }
}

std::string receive_bytes(std::uint64_t size, int from) {
  std::string bytes(size, '\0');
  for (std::size_t at = 0; at < bytes.size(); at += kPiece) {
    const std::size_t n = std::min(kPiece, bytes.size() - at);
    MPI_Recv(bytes.data() + at, static_cast<int>(n), MPI_BYTE, from, kTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  }
  return bytes;
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_free(&local);
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(version, &len);
    library_.assign(version, static_cast<std::size_t>(len));
    if (const auto nl = library_.find_first_of(",\n"); nl != std::string::npos) library_.resize(nl);
  }

  ~MpiCommunicator() override {
    // An exception that the ranks did not agree on leaves others inside a collective call:
    // finalising would wait for them for ever. Abort the job instead (the launcher reports it).
    if (std::uncaught_exceptions() > 0 && !done_) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  std::string describe() const override { return library_ + ", " + std::to_string(size_) + " ranks"; }

  std::string scatter(const std::vector<std::string>& parts, int root) override {
    Timed t(stats_);
    std::vector<std::uint64_t> sizes(static_cast<std::size_t>(size_), 0);
    if (rank_ == root) {
      MARGINET_EXPECTS(parts.size() == static_cast<std::size_t>(size_), "one part per rank");
      for (int r = 0; r < size_; ++r) sizes[static_cast<std::size_t>(r)] = parts[static_cast<std::size_t>(r)].size();
    }
    std::uint64_t mine = 0;
    MPI_Scatter(sizes.data(), 1, MPI_UINT64_T, &mine, 1, MPI_UINT64_T, root, MPI_COMM_WORLD);
    if (rank_ != root) {
      stats_.bytes_received += mine;
      return receive_bytes(mine, root);
    }
    for (int r = 0; r < size_; ++r) {
      if (r == root) continue;
      send_bytes(parts[static_cast<std::size_t>(r)], r);
      stats_.bytes_sent += parts[static_cast<std::size_t>(r)].size();
    }
    return parts[static_cast<std::size_t>(root)];
  }

  std::vector<std::string> gather(const std::string& mine, int root) override {
    Timed t(stats_);
    std::uint64_t size = mine.size();
    std::vector<std::uint64_t> sizes(static_cast<std::size_t>(size_), 0);
    MPI_Gather(&size, 1, MPI_UINT64_T, sizes.data(), 1, MPI_UINT64_T, root, MPI_COMM_WORLD);
    if (rank_ != root) {
      send_bytes(mine, root);
      stats_.bytes_sent += mine.size();
      return {};
    }
    std::vector<std::string> all(static_cast<std::size_t>(size_));
    for (int r = 0; r < size_; ++r) {
      if (r == root) {
        all[static_cast<std::size_t>(r)] = mine;
        continue;
      }
      all[static_cast<std::size_t>(r)] = receive_bytes(sizes[static_cast<std::size_t>(r)], r);
      stats_.bytes_received += sizes[static_cast<std::size_t>(r)];
    }
    return all;
  }

  std::string broadcast(const std::string& bytes, int root) override {
    Timed t(stats_);
    std::uint64_t size = bytes.size();
    MPI_Bcast(&size, 1, MPI_UINT64_T, root, MPI_COMM_WORLD);
    std::string out = rank_ == root ? bytes : std::string(size, '\0');
    for (std::size_t at = 0; at < out.size(); at += kPiece) {
      const std::size_t n = std::min(kPiece, out.size() - at);
      MPI_Bcast(out.data() + at, static_cast<int>(n), MPI_BYTE, root, MPI_COMM_WORLD);
    }
    if (rank_ == root)
      stats_.bytes_sent += size * static_cast<std::uint64_t>(size_ - 1);
    else
      stats_.bytes_received += size;
    return out;
  }

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  std::string library_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

}  // namespace marginet::scaleout
