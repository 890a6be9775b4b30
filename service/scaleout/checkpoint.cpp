#include "service/scaleout/checkpoint.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "models/errors.hpp"

namespace marginet::scaleout {

namespace fs = std::filesystem;

namespace {

constexpr const char* kMagic = "marginet-partition 1\n";

std::string digest(const std::string& bytes) {
  unsigned char h[crypto_generichash_BYTES];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), nullptr, 0);
  return std::string(reinterpret_cast<const char*>(h), sizeof h);
}

void write_durably(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw input_error(tmp, 0, "", "cannot create a checkpoint file");
  bool ok = true;
  for (std::size_t at = 0; ok && at < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + at, bytes.size() - at);
    ok = n > 0;
    if (ok) at += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw input_error(path, 0, "", "cannot write the checkpoint (disk full or not writable?)");
  }
  const int dir = ::open(fs::path(path).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace

CheckpointDir::CheckpointDir(std::string dir) : dir_(std::move(dir)) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (!fs::is_directory(dir_)) throw input_error(dir_, 0, "", "cannot create the checkpoint folder");
}

std::string CheckpointDir::file(std::size_t p, std::size_t partitions) const {
  return (fs::path(dir_) / ("part-" + std::to_string(p) + "-of-" + std::to_string(partitions) + ".bin")).string();
}

void CheckpointDir::write(std::size_t p, std::size_t partitions, const std::string& key,
                          const std::string& records) const {
  std::string bytes = kMagic + key + "\n" + records;
  bytes += digest(bytes);
  write_durably(file(p, partitions), bytes);
}

std::optional<std::string> CheckpointDir::read(std::size_t p, std::size_t partitions, const std::string& key,
                                               std::string& why) const {
  std::ifstream in(file(p, partitions), std::ios::binary);
  if (!in) {
    why = "no checkpoint";
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  const std::string head = kMagic + key + "\n";
  const std::size_t tail = crypto_generichash_BYTES;
  if (bytes.size() < head.size() + tail || bytes.compare(0, std::string(kMagic).size(), kMagic) != 0 ||
      digest(bytes.substr(0, bytes.size() - tail)) != bytes.substr(bytes.size() - tail)) {
    why = "checkpoint damaged";
    return std::nullopt;
  }
  if (bytes.compare(0, head.size(), head) != 0) {
    why = "checkpoint of other inputs";
    return std::nullopt;
  }
  return bytes.substr(head.size(), bytes.size() - head.size() - tail);
}

void CheckpointDir::remove_all() const {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("part-", 0) == 0) fs::remove(entry.path(), ec);
  }
  fs::remove(dir_, ec);  // only when empty
}

}  // namespace marginet::scaleout
