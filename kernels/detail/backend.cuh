#pragma once
// Included first by every kernel source (kernels/*.cu). A kernel source is compiled twice
// (see cmake/MarginetBackends.cmake): by nvcc for the CUDA backend and by the host compiler
// with THRUST_DEVICE_SYSTEM=OMP for the CPU backend. MARGINET_BACKEND_NS names the namespace
// of the copy being built: marginet::kernels::cpu or marginet::kernels::gpu.
//
// This folder (kernels/detail/) is the only place where the two builds differ in code: here
// the errors and the choice of decomposition; in device_memory.cuh the execution policy, the
// streams and the device memory; in primitives.cuh the few algorithms whose best form differs
// by backend. The kernel sources themselves are one orchestration for both, so that the CPU
// test suite runs the host code the GPU runs. Thrust types stay inside kernel sources; public
// kernel headers speak plain pointers only.

#ifndef MARGINET_BACKEND_NS
#error "kernel sources are built through marginet_add_kernels() (MARGINET_BACKEND_NS unset)"
#endif

#include <cstdlib>
#include <new>
#include <string>
#include <thrust/execution_policy.h>
#include <thrust/system_error.h>

#include "models/errors.hpp"

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#endif

namespace marginet::kernels::detail {

/// True where the backend's device memory is host memory (the CPU backend): kernels read the
/// caller's arrays in place and may take the CPU's vector paths (kernels/cpu_simd.hpp).
#if defined(__CUDACC__)
inline constexpr bool kHostIsDevice = false;
#else
inline constexpr bool kHostIsDevice = true;
#endif

/// Whether a kernel takes the CPU's decompositions (a row per task, per-thread tables, one
/// OpenMP region for an iteration, the per-row heap) or the GPU's (a thread per cell, atomics, a
/// pass per iteration, the radix select). Always the GPU's on CUDA. On the CPU the CPU's, unless
/// the environment says MARGINET_DECOMPOSITION=gpu: then the CPU backend runs the GPU's
/// decompositions and host code through Thrust's OpenMP system, which is how the test suite
/// exercises them on a machine without a GPU (tests/CMakeLists.txt, `*.gpu_decomposition`).
/// Read once per process.
#if defined(__CUDACC__)
constexpr bool host_decompositions() { return false; }
#else
inline bool host_decompositions() {
  static const bool host = [] {
    const char* v = std::getenv("MARGINET_DECOMPOSITION");
    return v == nullptr || std::string(v) != "gpu";
  }();
  return host;
}
#endif

#if defined(__CUDACC__)
/// After a failed CUDA call: clears a non-sticky error, then asks whether the context still
/// works. A sticky error (an illegal address, a kernel fault) persists across every later call
/// of this process: the context is unusable and only a new process recovers.
inline bool context_still_usable() noexcept {
  cudaGetLastError();
  return cudaDeviceSynchronize() == cudaSuccess;
}

[[noreturn]] inline void throw_cuda_error(cudaError_t rc, const char* call, const char* file, int line) {
  const bool usable = context_still_usable();
  throw cuda_error(std::string(cudaGetErrorName(rc)) + " (" + cudaGetErrorString(rc) + ") from " + call + " at " +
                       file + ":" + std::to_string(line) +
                       (usable ? "" : "; the CUDA context is unusable from now on"),
                   usable);
}
#endif

}  // namespace marginet::kernels::detail

#if defined(__CUDACC__)
/// Calls a CUDA runtime function and throws marginet::cuda_error when it fails, naming the
/// call and where; `recoverable()` is false when the error is sticky (RMM's RMM_CUDA_TRY).
#define MARGINET_CUDA_TRY(call)                                                          \
  do {                                                                                   \
    const cudaError_t marginet_cuda_rc_ = (call);                                        \
    if (marginet_cuda_rc_ != cudaSuccess)                                                \
      ::marginet::kernels::detail::throw_cuda_error(marginet_cuda_rc_, #call, __FILE__, __LINE__); \
  } while (0)
#endif

namespace marginet::kernels::detail {

/// Run a kernel body, turning Thrust/CUDA failures into marginet::cuda_error (a cuda_error
/// thrown inside passes through). A failure that leaves the context unusable is reported as
/// not recoverable. Out of device memory is recoverable: the pool is intact.
template <class Body>
auto run_translating_errors(const char* stage, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const cuda_error& e) {
    throw cuda_error(std::string(stage) + ": " + e.what(), e.recoverable());
  } catch (const thrust::system_error& e) {
    bool recoverable = true;
#if defined(__CUDACC__)
    recoverable = context_still_usable();
#endif
    throw cuda_error(std::string(stage) + ": " + e.what(), recoverable);
  } catch (const std::bad_alloc&) {
    throw cuda_error(std::string(stage) + ": out of " + (kHostIsDevice ? "memory" : "device memory"), true);
  }
}

}  // namespace marginet::kernels::detail
