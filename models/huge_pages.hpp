#pragma once
// Large arrays filled once and read by the kernels (trade columns, parse buffers) are asked to be
// backed by transparent huge pages: on a machine whose THP mode is `madvise` (Debian's default)
// a page fault then maps 2 MiB instead of 4 KiB. On a virtual machine a page fault costs
// microseconds, and a 10-million-trade parse touches half a gigabyte of fresh memory: the faults
// were most of its time (perf: the kernel's pvm_irq_enable at 20 %).

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

namespace marginet {

/// Advises THP for the whole 2 MiB-aligned pages inside [p, p + bytes). A hint: no effect where
/// the kernel does not do THP, and never an error.
inline void advise_huge_pages(const void* p, std::size_t bytes) {
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  if (bytes < 2 * kHuge) return;
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

/// reserve(n), then the advice over the vector's buffer (before anything is written to it).
template <class Vector>
void reserve_huge(Vector& v, std::size_t n) {
  v.reserve(n);
  advise_huge_pages(v.data(), v.capacity() * sizeof(typename Vector::value_type));
}

}  // namespace marginet
