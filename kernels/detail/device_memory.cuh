#pragma once
// Device memory for kernel sources: where a kernel's inputs, outputs and temporaries live.
//
//   Buffer<T>   n elements of the backend's device memory, uninitialised; moves, never copies.
//               CUDA: from the device's stream-ordered pool (cudaMallocAsync on this thread's
//               stream; the pool keeps freed memory for the next call instead of returning it
//               to the driver, so there is no cudaMalloc per call; cudaMalloc only on a device
//               without pools). CPU: host memory.
//               Freeing never throws (RMM's rule): a failed free is reported once on stderr
//               and the memory is left to the pool.
//   Input<T>    a caller's array where the kernel reads it: device memory (a DeviceArray of
//               kernels/device_array.hpp, and on the CPU every array) in place, with no copy
//               of hundreds of MB; a host array on a GPU through a pooled copy.
//   Output<T>   where a kernel writes a caller's array: device memory in place; a host array
//               on a GPU through a pooled buffer that to_host() copies back.
//   exec()      the execution policy of every Thrust call: CUDA, this thread's stream with
//               temporaries from the pool; CPU, Thrust's OpenMP system.
//   synchronize(stage)  waits for the stream and reports an asynchronous kernel fault.
//
// Each host thread that runs kernels has its own stream (a pipeline: the service's compute
// thread and its socket thread's what-if lane do not wait for each other). The namespace is
// the backend's own (cpu::buffers, gpu::buffers): the two builds define these differently.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "kernels/detail/backend.cuh"

#if defined(__CUDACC__)
#include <atomic>
#include <cstdint>
#include <thrust/system/cuda/execution_policy.h>
#endif

namespace marginet::kernels::MARGINET_BACKEND_NS::buffers {

#if defined(__CUDACC__)
/// This thread's stream, created on first use (non-blocking: it never waits for the legacy
/// default stream) and destroyed when the thread ends.
inline cudaStream_t stream() {
  struct Owned {
    cudaStream_t s = nullptr;
    Owned() { MARGINET_CUDA_TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
    ~Owned() {
      if (s) cudaStreamDestroy(s);  // at thread exit; an error here has no one to report to
    }
  };
  thread_local Owned owned;
  return owned.s;
}

/// Whether the device has stream-ordered memory pools (every GPU this project targets does; a
/// vGPU or an old driver may not): without them, plain cudaMalloc and cudaFree.
inline bool use_pool() noexcept {
  static const bool supported = [] {
    int device = 0, pools = 0;
    const bool ok = cudaGetDevice(&device) == cudaSuccess &&
                    cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device) == cudaSuccess;
    if (!ok) cudaGetLastError();
    return ok && pools != 0;
  }();
  return supported;
}

/// The current device's default memory pool keeps what is freed (release threshold: never),
/// once per device.
inline void keep_pool_memory() {
  static std::atomic<std::uint64_t> configured{0};
  int device = 0;
  MARGINET_CUDA_TRY(cudaGetDevice(&device));
  const std::uint64_t bit = std::uint64_t{1} << (device & 63);
  if (configured.load(std::memory_order_relaxed) & bit) return;
  cudaMemPool_t pool = nullptr;
  MARGINET_CUDA_TRY(cudaDeviceGetDefaultMemPool(&pool, device));
  std::uint64_t keep = ~std::uint64_t{0};
  MARGINET_CUDA_TRY(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
  configured.fetch_or(bit, std::memory_order_relaxed);
}

inline void* allocate_bytes(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  cudaError_t rc;
  if (use_pool()) {
    keep_pool_memory();
    rc = cudaMallocAsync(&p, bytes, stream());
  } else {
    rc = cudaMalloc(&p, bytes);
  }
  if (rc == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: the pool is intact
    throw std::bad_alloc();
  }
  MARGINET_CUDA_TRY(rc);
  return p;
}

inline void release_bytes(void* p) noexcept {
  if (p == nullptr) return;
  cudaError_t rc = cudaErrorUnknown;
  try {
    rc = use_pool() ? cudaFreeAsync(p, stream()) : cudaFree(p);
  } catch (...) {  // no stream for this thread: nothing to free on
  }
  if (rc != cudaSuccess) {
    cudaGetLastError();
    static std::atomic<bool> reported{false};
    if (!reported.exchange(true))
      std::fprintf(stderr, "marginet: freeing device memory failed (%s); later failures are not reported\n",
                   cudaGetErrorString(rc));
  }
}

/// Temporaries of Thrust's algorithms (sort, reduce_by_key) from the same pool.
struct PoolAllocator {
  using value_type = char;
  char* allocate(std::ptrdiff_t n) { return static_cast<char*>(allocate_bytes(static_cast<std::size_t>(n))); }
  void deallocate(char* p, std::size_t) noexcept { release_bytes(p); }
};

inline auto exec() {
  static PoolAllocator pool;  // stateless
  return thrust::cuda::par(pool).on(stream());
}

inline void copy_bytes(void* to, const void* from, std::size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return;
  MARGINET_CUDA_TRY(cudaMemcpyAsync(to, from, bytes, kind, stream()));
  if (kind == cudaMemcpyDeviceToHost) MARGINET_CUDA_TRY(cudaStreamSynchronize(stream()));
}

inline void synchronize() { MARGINET_CUDA_TRY(cudaStreamSynchronize(stream())); }

/// Whether `p` is memory of this device (a Buffer's or a DeviceArray's), which kernels read
/// and write in place, rather than a host array they copy.
inline bool on_device(const void* p) {
  if (p == nullptr) return false;
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    cudaGetLastError();  // an unknown pointer: host memory
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
}

/// Page-locks host memory for copies at the bus's full rate: best effort (the copies work
/// without it, through the driver's staging), so a refusal returns null rather than throwing;
/// unpin never throws.
inline void* pin(void* host, std::size_t bytes) {
  if (cudaHostRegister(host, bytes, cudaHostRegisterDefault) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return host;
}
inline void unpin(void* host) noexcept {
  if (cudaHostUnregister(host) != cudaSuccess) cudaGetLastError();
}

/// What a new allocation may still take: the driver's free memory plus the pool's unused part.
inline std::size_t free_bytes() {
  std::size_t free = 0, total = 0;
  MARGINET_CUDA_TRY(cudaMemGetInfo(&free, &total));
  if (!use_pool()) return free;
  int device = 0;
  MARGINET_CUDA_TRY(cudaGetDevice(&device));
  cudaMemPool_t pool = nullptr;
  MARGINET_CUDA_TRY(cudaDeviceGetDefaultMemPool(&pool, device));
  std::uint64_t reserved = 0, used = 0;
  MARGINET_CUDA_TRY(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved));
  MARGINET_CUDA_TRY(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used));
  return free + static_cast<std::size_t>(reserved - used);
}
#else
inline void* allocate_bytes(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = std::malloc(bytes);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
inline void release_bytes(void* p) noexcept { std::free(p); }
inline auto exec() { return thrust::device; }  // Thrust's OpenMP system
inline void synchronize() {}
inline bool on_device(const void*) { return true; }  // host memory is device memory
inline void* pin(void* host, std::size_t) { return host; }
inline void unpin(void*) noexcept {}
inline std::size_t free_bytes() { return SIZE_MAX; }
#endif

template <class T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t n) : ptr_(static_cast<T*>(allocate_bytes(n * sizeof(T)))), size_(n) {}
  Buffer(Buffer&& other) noexcept : ptr_(std::exchange(other.ptr_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Buffer& operator=(Buffer&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(size_, other.size_);
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release_bytes(ptr_); }

  T* data() const { return ptr_; }
  std::size_t size() const { return size_; }

 private:
  T* ptr_ = nullptr;
  std::size_t size_ = 0;
};

/// Host → device (n elements). The host array may be reused as soon as this returns.
template <class T>
void upload(T* device, const T* host, std::size_t n) {
#if defined(__CUDACC__)
  copy_bytes(device, host, n * sizeof(T), cudaMemcpyHostToDevice);
#else
  if (device != host && n) std::memcpy(static_cast<void*>(device), host, n * sizeof(T));
#endif
}

/// Device → host (n elements), complete when this returns.
template <class T>
void download(T* host, const T* device, std::size_t n) {
#if defined(__CUDACC__)
  copy_bytes(host, device, n * sizeof(T), cudaMemcpyDeviceToHost);
#else
  if (device != host && n) std::memcpy(static_cast<void*>(host), device, n * sizeof(T));
#endif
}

/// An array a kernel reads: in place when it is device memory already (always on the CPU),
/// else a pooled copy.
template <class T>
struct Input {
  Buffer<T> copy;
  const T* ptr;
  Input(const T* array, std::size_t n) : Input(array, n, on_device(array)) {}

 private:
  // Where the array is, asked once: on CUDA each question is a cudaPointerGetAttributes.
  Input(const T* array, std::size_t n, bool in_place) : copy(in_place ? 0 : n), ptr(in_place ? array : copy.data()) {
    if (ptr != array) upload(copy.data(), array, n);
  }
};

/// An array a kernel writes: in place when it is device memory (always on the CPU), else a
/// pooled buffer that to_host() copies into it.
template <class T>
struct Output {
  Buffer<T> buffer;
  T* array;
  T* ptr;
  std::size_t n;
  Output(T* a, std::size_t count) : Output(a, count, on_device(a)) {}
  void to_host() {
    if (ptr != array) download(array, ptr, n);
  }

 private:
  Output(T* a, std::size_t count, bool in_place)
      : buffer(in_place ? 0 : count), array(a), ptr(in_place ? a : buffer.data()), n(count) {}
};

}  // namespace marginet::kernels::MARGINET_BACKEND_NS::buffers
