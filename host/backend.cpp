#include "host/backend.hpp"

#include <omp.h>
#include <spdlog/spdlog.h>
#include <thrust/version.h>

#include <atomic>
#include <cstdio>
#include <mutex>

#include "kernels/cpu_simd.hpp"
#include "models/errors.hpp"

#if MARGINET_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace marginet {

DeviceChoice parse_device_choice(const std::string& text) {
  if (text == "auto") return DeviceChoice::automatic;
  if (text == "cpu") return DeviceChoice::cpu;
  if (text == "cuda") return DeviceChoice::cuda;
  throw usage_error("--device must be auto, cpu or cuda (got '" + text + "')");
}

const char* backend_name(Backend backend) {
  return backend == Backend::cuda ? "cuda" : "cpu";
}

static CudaProbe run_probe() {
  CudaProbe p;
#if MARGINET_HAVE_CUDA
  p.built = true;
  cudaRuntimeGetVersion(&p.runtime_version);
  cudaDriverGetVersion(&p.driver_version);
  int count = 0;  // left untouched by cudaGetDeviceCount when no driver answers
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    p.error = std::string(cudaGetErrorName(rc)) + ": " + cudaGetErrorString(rc);
    cudaGetLastError();
    return p;
  }
  p.device_count = count;
  if (count == 0) {
    p.error = "no CUDA device found";
    return p;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
    p.device_name = prop.name;
    p.compute_major = prop.major;
    p.compute_minor = prop.minor;
    p.memory_gib = static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0);
  }
  int clock_khz = 0, bus_bits = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, 0);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0);
  // Double data rate: 2 transfers per clock.
  p.peak_bandwidth_gbs = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
#else
  p.error = "CUDA backend not built";
#endif
  return p;
}

const CudaProbe& probe_cuda() {
  static const CudaProbe probe = run_probe();
  return probe;
}

int bind_cuda_device(int local_rank) {
  const CudaProbe& p = probe_cuda();
  if (!p.available()) return -1;
  const int ordinal = local_rank % p.device_count;
#if MARGINET_HAVE_CUDA
  const cudaError_t rc = cudaSetDevice(ordinal);
  if (rc != cudaSuccess)
    throw cuda_error("cudaSetDevice(" + std::to_string(ordinal) + "): " + cudaGetErrorString(rc), true);
#endif
  return ordinal;
}

Backend select_backend(DeviceChoice choice) {
  switch (choice) {
    case DeviceChoice::cpu:
      return Backend::cpu;
    case DeviceChoice::cuda:
      if (!probe_cuda().available())
        throw usage_error("--device cuda: no CUDA device answered (" + probe_cuda().error + ")");
      return Backend::cuda;
    case DeviceChoice::automatic:
      break;
  }
  return probe_cuda().available() ? Backend::cuda : Backend::cpu;
}

namespace {
std::atomic<DeviceErrorPolicy> g_device_error_policy{DeviceErrorPolicy::refuse};
std::atomic<bool> g_cuda_unusable{false};
std::mutex g_cuda_reason_mutex;
std::string g_cuda_reason;  // guarded by g_cuda_reason_mutex
}  // namespace

DeviceErrorPolicy parse_device_error_policy(const std::string& text) {
  if (text == "refuse") return DeviceErrorPolicy::refuse;
  if (text == "cpu") return DeviceErrorPolicy::cpu;
  throw usage_error("--on-device-error must be refuse or cpu (got '" + text + "')");
}

void set_device_error_policy(DeviceErrorPolicy policy) { g_device_error_policy.store(policy); }
DeviceErrorPolicy device_error_policy() { return g_device_error_policy.load(); }

void mark_cuda_unusable(const std::string& reason) {
  const std::lock_guard<std::mutex> lock(g_cuda_reason_mutex);
  if (g_cuda_unusable.load()) return;
  g_cuda_reason = reason;
  g_cuda_unusable.store(true);
  spdlog::error("the CUDA device is unusable from now on ({}); {}", reason,
                device_error_policy() == DeviceErrorPolicy::cpu ? "computing on the CPU instead"
                                                                : "device work is refused until the process restarts");
}

std::string cuda_unusable_reason() {
  if (!g_cuda_unusable.load()) return {};
  const std::lock_guard<std::mutex> lock(g_cuda_reason_mutex);
  return g_cuda_reason;
}

void clear_cuda_unusable_for_tests() {
  const std::lock_guard<std::mutex> lock(g_cuda_reason_mutex);
  g_cuda_reason.clear();
  g_cuda_unusable.store(false);
}

Backend usable_backend(Backend requested) {
  if (requested != Backend::cuda || !g_cuda_unusable.load()) return requested;
  if (device_error_policy() == DeviceErrorPolicy::cpu) return Backend::cpu;
  throw cuda_error("the CUDA device is unusable since an earlier failure (" + cuda_unusable_reason() +
                       "); device work is refused until the process restarts",
                   false);
}

std::string describe_device(Backend backend) {
  if (backend == Backend::cuda) {
    const CudaProbe& p = probe_cuda();
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s (sm_%d%d, %.1f GiB, %.0f GB/s peak)", p.device_name.c_str(),
                  p.compute_major, p.compute_minor, p.memory_gib, p.peak_bandwidth_gbs);
    const std::string reason = cuda_unusable_reason();
    if (reason.empty()) return buf;
    return std::string(buf) + "; UNUSABLE since: " + reason +
           (device_error_policy() == DeviceErrorPolicy::cpu ? " (computing on the CPU)" : " (device work refused)");
  }
  return "CPU, " + std::to_string(cpu_threads()) + " OpenMP threads, " +
         kernels::simd_name(kernels::simd_level()) + " risk arrays";
}

void set_cpu_threads(int threads) {
  if (threads < 0) throw usage_error("--threads must be >= 0");
  if (threads > 0) omp_set_num_threads(threads);
}

int cpu_threads() { return omp_get_max_threads(); }

std::string thrust_version() {
  return std::to_string(THRUST_MAJOR_VERSION) + "." + std::to_string(THRUST_MINOR_VERSION) + "." +
         std::to_string(THRUST_SUBMINOR_VERSION);
}

std::string compiler_version() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "unknown compiler";
#endif
}

std::string backends_built() {
#if MARGINET_HAVE_CUDA
  return "cpu,cuda";
#else
  return "cpu";
#endif
}

}  // namespace marginet
