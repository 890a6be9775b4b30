#pragma once
// Arrays that live in a backend's device memory, owned by host code: what host/ keeps on the
// device across the stages of a run (the instrument states, the positions CSR, the scenario
// shocks, the risk arrays, the P&L matrix) so that a stage reads the previous stage's output
// where it already is. Opaque: no Thrust or CUDA type here.
//
// For the CPU backend device memory is host memory: resident() then returns the host array
// itself and allocates nothing, so both backends run the same host code and only the GPU pays
// for copies. On CUDA the memory comes from the device's stream-ordered pool
// (kernels/detail/device_memory.cuh); freeing never throws.
//
// Kernels take views: every pointer a kernel's Args struct holds may be a host array or a
// DeviceArray's data() on that kernel's backend; a kernel reads and writes device memory in
// place and copies host arrays in and out itself.

#include <cstddef>
#include <utility>

#include "kernels/api.hpp"

namespace marginet::kernels {

/// `bytes` of one backend's device memory; moves, never copies; freed (never throwing) when the
/// handle goes.
class DeviceBytes {
 public:
  using Release = void (*)(void*) noexcept;
  DeviceBytes() = default;
  DeviceBytes(void* ptr, std::size_t bytes, Release release) : ptr_(ptr), bytes_(bytes), release_(release) {}
  DeviceBytes(DeviceBytes&& other) noexcept
      : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)),
        release_(std::exchange(other.release_, nullptr)) {}
  DeviceBytes& operator=(DeviceBytes&& other) noexcept {
    DeviceBytes(std::move(other)).swap(*this);
    return *this;
  }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  ~DeviceBytes() {
    if (ptr_ && release_) release_(ptr_);
  }
  void swap(DeviceBytes& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(bytes_, other.bytes_);
    std::swap(release_, other.release_);
  }
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  Release release_ = nullptr;
};

MARGINET_KERNEL_API(
/// `bytes` of the backend's device memory, uninitialised (pooled on CUDA). Out of memory is a
/// recoverable cuda_error.
DeviceBytes device_allocate(std::size_t bytes);
/// Host → device; the host array may be reused as soon as this returns.
void device_upload(void* device, const void* host, std::size_t bytes);
/// Device → host, complete when this returns.
void device_download(void* host, const void* device, std::size_t bytes);
/// Page-locks `bytes` of host memory at `host` for the backend's copies (CUDA: cudaHostRegister,
/// so that a download of P runs at the bus's full rate rather than through the driver's
/// staging buffers); the handle unlocks it when it goes, before the memory is freed. Best
/// effort: where the driver refuses, an empty handle (the copies still work). The CPU backend
/// has nothing to lock: an empty handle.
DeviceBytes pin_host_memory(void* host, std::size_t bytes);
/// Device memory a new allocation may still take, in bytes (free in the driver plus what the
/// pool holds unused); for the CPU backend, SIZE_MAX (host memory is not budgeted here).
std::size_t device_free_bytes();
)

/// n elements of T in a backend's device memory. Owning, move-only.
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(DeviceBytes bytes, std::size_t n) : bytes_(std::move(bytes)), size_(n) {}
  T* data() const { return static_cast<T*>(bytes_.get()); }
  std::size_t size() const { return size_; }

 private:
  DeviceBytes bytes_;
  std::size_t size_ = 0;
};

}  // namespace marginet::kernels
