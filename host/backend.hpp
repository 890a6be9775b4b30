#pragma once
// The one place that owns backend choice: which backends were built, which CUDA device (if
// any) answers, and what `--device auto|cpu|cuda` resolves to.

#include <string>

namespace marginet {

enum class Backend { cpu, cuda };
enum class DeviceChoice { automatic, cpu, cuda };

/// "auto" | "cpu" | "cuda"; anything else is a usage_error.
DeviceChoice parse_device_choice(const std::string& text);
const char* backend_name(Backend backend);

/// What the CUDA runtime says about this machine. Probed once, then cached.
struct CudaProbe {
  bool built = false;            // the CUDA backend was compiled in
  int device_count = 0;
  std::string device_name;       // device 0
  int compute_major = 0, compute_minor = 0;
  double memory_gib = 0;
  double peak_bandwidth_gbs = 0; // from memory clock and bus width
  int runtime_version = 0, driver_version = 0;
  std::string error;             // why no device answered, when none did

  bool available() const { return built && device_count > 0; }
};
const CudaProbe& probe_cuda();

/// Resolve a device choice. `cuda` with no device is a usage_error naming the reason; `auto`
/// takes CUDA when a device answers, else the CPU.
Backend select_backend(DeviceChoice choice);

/// A distributed run's rank takes one GPU of its machine: device `local_rank` modulo the devices
/// found, made current for this process. Returns the device's ordinal, or -1 when no CUDA device
/// answers (nothing to bind; the CPU backend ignores it).
int bind_cuda_device(int local_rank);

/// One line describing the device a backend runs on (for --version, logs and benchmarks).
std::string describe_device(Backend backend);

/// Worker threads of the CPU backend (OpenMP); 0 keeps the default (all cores).
void set_cpu_threads(int threads);
int cpu_threads();

/// Versions compiled in.
const char* git_revision();
std::string thrust_version();
std::string compiler_version();
std::string backends_built();   // "cpu" or "cpu,cuda"

}  // namespace marginet
