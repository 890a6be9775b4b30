#pragma once
// Calling a kernel on the backend chosen at run time:
//   MARGINET_DISPATCH(backend, weighted_worst_loss, args);
// calls marginet::kernels::cpu::weighted_worst_loss(args) or ...::gpu::... through
// run_on_backend, which applies the device error policy (host/backend.hpp): a CUDA context
// that has become unusable is never touched again; its work is refused or runs on the CPU.

#include <utility>

#include "host/backend.hpp"
#include "models/errors.hpp"

namespace marginet {

/// cpu() or gpu() as `backend` and the state of the CUDA context say. A not-recoverable
/// cuda_error from gpu() marks the context unusable before it propagates.
template <class Cpu, class Gpu>
decltype(auto) run_on_backend(Backend backend, Cpu&& cpu, Gpu&& gpu) {
  if (usable_backend(backend) == Backend::cpu) return std::forward<Cpu>(cpu)();
  try {
    return std::forward<Gpu>(gpu)();
  } catch (const cuda_error& e) {
    if (!e.recoverable()) mark_cuda_unusable(e.what());
    throw;
  }
}

}  // namespace marginet

#if MARGINET_HAVE_CUDA
#define MARGINET_DISPATCH(backend, kernel, ...)                                              \
  ::marginet::run_on_backend(                                                                \
      (backend), [&]() -> decltype(auto) { return ::marginet::kernels::cpu::kernel(__VA_ARGS__); }, \
      [&]() -> decltype(auto) { return ::marginet::kernels::gpu::kernel(__VA_ARGS__); })
#else
#define MARGINET_DISPATCH(backend, kernel, ...)                                              \
  ::marginet::run_on_backend(                                                                \
      (backend), [&]() -> decltype(auto) { return ::marginet::kernels::cpu::kernel(__VA_ARGS__); }, \
      [&]() -> decltype(::marginet::kernels::cpu::kernel(__VA_ARGS__)) {                    \
        throw ::marginet::usage_error("the CUDA backend was not built into this binary");    \
      })
#endif
