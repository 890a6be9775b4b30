#include "kernels/cpu_simd.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace marginet::kernels {

namespace {

SimdLevel detect() {
#if defined(__x86_64__) || defined(__i386__)
  // libgcc checks the CPUID bit and that the OS saves the YMM registers (XGETBV).
  if (__builtin_cpu_supports("avx2")) return SimdLevel::avx2;
#endif
  return SimdLevel::scalar;
}

SimdLevel clamp(SimdLevel wanted) {
  const SimdLevel best = simd_supported();
  return static_cast<int>(wanted) <= static_cast<int>(best) ? wanted : best;
}

SimdLevel initial() {
  const char* env = std::getenv("MARGINET_SIMD");
  if (env != nullptr && std::strcmp(env, "scalar") == 0) return SimdLevel::scalar;
  if (env != nullptr && std::strcmp(env, "avx2") == 0) return clamp(SimdLevel::avx2);
  return simd_supported();
}

std::atomic<SimdLevel>& current() {
  static std::atomic<SimdLevel> level{initial()};
  return level;
}

}  // namespace

const char* simd_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::scalar:
      return "scalar";
    case SimdLevel::avx2:
      return "avx2";
  }
  return "scalar";
}

SimdLevel simd_supported() {
  static const SimdLevel best = detect();
  return best;
}

SimdLevel simd_level() { return current().load(std::memory_order_relaxed); }

SimdLevel set_simd_level(SimdLevel level) {
  const SimdLevel used = clamp(level);
  current().store(used, std::memory_order_relaxed);
  return used;
}

}  // namespace marginet::kernels
