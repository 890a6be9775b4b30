// kernels/device_array.hpp for each backend: the pool and copies of
// kernels/detail/device_memory.cuh behind a Thrust- and CUDA-free interface.
#include "kernels/detail/backend.cuh"
#include "kernels/detail/device_memory.cuh"
#include "kernels/device_array.hpp"

#include <cstdint>

namespace marginet::kernels::MARGINET_BACKEND_NS {

DeviceBytes device_allocate(std::size_t bytes) {
  return detail::run_translating_errors("device_allocate", [&] {
    return DeviceBytes(buffers::allocate_bytes(bytes), bytes, &buffers::release_bytes);
  });
}

void device_upload(void* device, const void* host, std::size_t bytes) {
  detail::run_translating_errors("device_upload", [&] {
    buffers::upload(static_cast<unsigned char*>(device), static_cast<const unsigned char*>(host), bytes);
  });
}

void device_download(void* host, const void* device, std::size_t bytes) {
  detail::run_translating_errors("device_download", [&] {
    buffers::download(static_cast<unsigned char*>(host), static_cast<const unsigned char*>(device), bytes);
  });
}

DeviceBytes pin_host_memory(void* host, std::size_t bytes) {
  if (detail::kHostIsDevice || host == nullptr || bytes == 0) return DeviceBytes();
  return detail::run_translating_errors("pin_host_memory", [&] {
    void* pinned = buffers::pin(host, bytes);
    return pinned ? DeviceBytes(pinned, bytes, &buffers::unpin) : DeviceBytes();
  });
}

std::size_t device_free_bytes() {
  return detail::run_translating_errors("device_free_bytes", [&] { return buffers::free_bytes(); });
}

}  // namespace marginet::kernels::MARGINET_BACKEND_NS
