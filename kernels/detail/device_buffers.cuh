#pragma once
// Where a kernel reads its inputs and writes its outputs (kernel sources only). On the CPU
// backend "device" memory is host memory: the caller's arrays are used in place, with no copy of
// hundreds of MB. On a GPU they are copied over (inputs) and back (outputs, to_host()).
// Included by kernels after kernels/detail/backend.cuh. The namespace is the backend's own
// (cpu::buffers, gpu::buffers): the two builds define these differently, so one shared name
// would break the one-definition rule.

#include <cstddef>
#include <thrust/copy.h>
#include <thrust/device_vector.h>

namespace marginet::kernels::MARGINET_BACKEND_NS::buffers {

template <class T>
struct DeviceInput {
#if defined(__CUDACC__)
  thrust::device_vector<T> copy;
  const T* ptr;
  DeviceInput(const T* host, std::size_t n)
      : copy(host, host + n), ptr(n ? thrust::raw_pointer_cast(copy.data()) : nullptr) {}
#else
  const T* ptr;
  DeviceInput(const T* host, std::size_t) : ptr(host) {}
#endif
};

template <class T>
struct DeviceOutput {
#if defined(__CUDACC__)
  thrust::device_vector<T> buffer;
  T* host;
  T* ptr;
  DeviceOutput(T* h, std::size_t n) : buffer(n), host(h), ptr(thrust::raw_pointer_cast(buffer.data())) {}
  void to_host() { thrust::copy(buffer.begin(), buffer.end(), host); }
#else
  T* ptr;
  DeviceOutput(T* h, std::size_t) : ptr(h) {}
  void to_host() {}
#endif
};

}  // namespace marginet::kernels::MARGINET_BACKEND_NS::buffers
