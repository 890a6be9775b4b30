#pragma once
// A large host array that the kernels overwrite whole: allocated without being zero-filled
// (std::vector would write every byte once before the kernel writes it again) and, on Linux,
// backed by transparent huge pages where the system allows it (madvise), which cuts the page
// faults of a first touch by 512× — on a VM they cost more than the arithmetic. The risk arrays
// and account P&L rows of an end-of-day run are gigabytes.

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>

namespace marginet {

template <class T>
class HostBuffer {
 public:
  HostBuffer() = default;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  HostBuffer(HostBuffer&& other) noexcept { swap(other); }
  HostBuffer& operator=(HostBuffer&& other) noexcept {
    HostBuffer(std::move(other)).swap(*this);
    return *this;
  }
  ~HostBuffer() { std::free(data_); }

  /// n elements with unspecified contents (the caller writes every one before reading it).
  void reset(std::size_t n) {
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
    if (n == 0) return;
    const bool huge = n * sizeof(T) >= kHugePage;
    const std::size_t align = huge ? kHugePage : kLine;
    const std::size_t bytes = (n * sizeof(T) + align - 1) / align * align;
    void* p = std::aligned_alloc(align, bytes);
    if (p == nullptr) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
    if (huge) madvise(p, bytes, MADV_HUGEPAGE);  // a hint: ignored where THP is off
#endif
    data_ = static_cast<T*>(p);
    size_ = n;
  }
  void swap(HostBuffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }

 private:
  static constexpr std::size_t kHugePage = std::size_t(2) << 20;
  static constexpr std::size_t kLine = 64;
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace marginet
