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

/// One line describing the device a backend runs on (for --version, logs and benchmarks);
/// for CUDA, says so when the context has become unusable.
std::string describe_device(Backend backend);

/// After a sticky CUDA error (an illegal address, a kernel fault) the context is unusable for
/// the rest of the process. What kernel calls on the CUDA backend do from then on:
///   refuse  throw marginet::cuda_error (not recoverable) without touching the device: a
///           service answers `internal` to every request that needs it, and goes on serving
///           the rest (status, queries of the committed state);
///   cpu     run on the CPU backend instead (the same sources; results within the
///           cross-backend tolerance of docs/margin.md).
/// The call that met the error fails either way. The default is refuse.
enum class DeviceErrorPolicy { refuse, cpu };
/// "refuse" | "cpu"; anything else is a usage_error.
DeviceErrorPolicy parse_device_error_policy(const std::string& text);
void set_device_error_policy(DeviceErrorPolicy policy);
DeviceErrorPolicy device_error_policy();

/// Records that the CUDA context is unusable (the first reason is kept). Thread-safe.
void mark_cuda_unusable(const std::string& reason);
/// Empty while the CUDA context works; else why it does not.
std::string cuda_unusable_reason();
/// Forgets a recorded failure: for tests only (a real context does not recover).
void clear_cuda_unusable_for_tests();

/// The backend a kernel call runs on now: `requested`, unless that is CUDA and the context is
/// unusable; then the CPU (policy cpu) or a cuda_error naming the first failure (refuse).
Backend usable_backend(Backend requested);

/// Worker threads of the CPU backend (OpenMP); 0 keeps the default (all cores).
void set_cpu_threads(int threads);
int cpu_threads();

/// Versions compiled in.
const char* git_revision();
std::string thrust_version();
std::string compiler_version();
std::string backends_built();   // "cpu" or "cpu,cuda"

}  // namespace marginet
