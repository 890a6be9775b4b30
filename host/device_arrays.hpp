#pragma once
// Host arrays where a backend's kernels read and write them (kernels/device_array.hpp): the
// same host code for both backends. On the CPU backend every call here hands back the host
// array itself and copies nothing; on CUDA it allocates from the device's pool and copies.
//
//   const T* in = device_copy(backend, host, n, owner);     // kernels read `in`
//   T* out = device_output(backend, host, n, owner);        // kernels write `out`
//   copy_to_host(backend, host, out, n);                    // when the host needs it

#include <cstddef>

#include "host/backend.hpp"
#include "host/dispatch.hpp"
#include "kernels/device_array.hpp"

namespace marginet {

/// Whether `backend`'s kernels run on host memory now (the CPU backend, or CUDA after a lost
/// context under the cpu policy).
inline bool memory_is_host(Backend backend) { return usable_backend(backend) == Backend::cpu; }

/// `host`'s n elements where `backend`'s kernels read them: `host` itself on the CPU; else a
/// copy in `owner` (replacing what it held).
template <class T>
const T* device_copy(Backend backend, const T* host, std::size_t n, kernels::DeviceArray<T>& owner) {
  if (memory_is_host(backend) || n == 0) return host;
  owner = kernels::DeviceArray<T>(MARGINET_DISPATCH(backend, device_allocate, n * sizeof(T)), n);
  MARGINET_DISPATCH(backend, device_upload, owner.data(), host, n * sizeof(T));
  return owner.data();
}

/// Where `backend`'s kernels write n elements meant for `host`: `host` itself on the CPU; else
/// `owner`, reallocated when its size differs.
template <class T>
T* device_output(Backend backend, T* host, std::size_t n, kernels::DeviceArray<T>& owner) {
  if (memory_is_host(backend) || n == 0) return host;
  if (owner.size() != n) owner = kernels::DeviceArray<T>(MARGINET_DISPATCH(backend, device_allocate, n * sizeof(T)), n);
  return owner.data();
}

/// A device_output's n elements into `host` (nothing to do when they are `host` already).
template <class T>
void copy_to_host(Backend backend, T* host, const T* device, std::size_t n) {
  if (device == host || n == 0) return;
  MARGINET_DISPATCH(backend, device_download, host, device, n * sizeof(T));
}

}  // namespace marginet
