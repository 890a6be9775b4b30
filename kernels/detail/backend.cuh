#pragma once
// Included first by every kernel source (kernels/*.cu). A kernel source is compiled twice
// (see cmake/MarginetBackends.cmake): by nvcc for the CUDA backend and by the host compiler
// with THRUST_DEVICE_SYSTEM=OMP for the CPU backend. MARGINET_BACKEND_NS names the namespace
// of the copy being built: marginet::kernels::cpu or marginet::kernels::gpu.
//
// Thrust types stay inside kernel sources; public kernel headers speak host pointers only.

#ifndef MARGINET_BACKEND_NS
#error "kernel sources are built through marginet_add_kernels() (MARGINET_BACKEND_NS unset)"
#endif

#include <new>
#include <string>
#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/system_error.h>

#include "models/errors.hpp"

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#endif

namespace marginet::kernels::detail {

/// Run a kernel body, turning Thrust/CUDA failures into marginet::cuda_error. A failure that
/// leaves the context unusable (a sticky error) is reported as not recoverable.
template <class Body>
auto run_translating_errors(const char* stage, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const thrust::system_error& e) {
    bool recoverable = true;
#if defined(__CUDACC__)
    cudaGetLastError();                                       // clear a non-sticky error
    recoverable = cudaDeviceSynchronize() == cudaSuccess;     // sticky errors persist
#endif
    throw cuda_error(std::string(stage) + ": " + e.what(), recoverable);
  } catch (const std::bad_alloc&) {
    throw cuda_error(std::string(stage) + ": out of device memory", true);
  }
}

/// Copy a host range into a device vector (for the CPU backend this is host memory too).
template <class T>
thrust::device_vector<T> to_device(const T* host, std::size_t n) {
  return thrust::device_vector<T>(host, host + n);
}

}  // namespace marginet::kernels::detail
