#pragma once
// Calling a kernel on the backend chosen at run time:
//   MARGINET_DISPATCH(backend, weighted_worst_loss, args);
// calls marginet::kernels::cpu::weighted_worst_loss(args) or ...::gpu::... .

#include "host/backend.hpp"
#include "models/errors.hpp"

#if MARGINET_HAVE_CUDA
#define MARGINET_DISPATCH(backend, kernel, ...)                                          \
  ((backend) == ::marginet::Backend::cuda ? ::marginet::kernels::gpu::kernel(__VA_ARGS__) \
                                          : ::marginet::kernels::cpu::kernel(__VA_ARGS__))
#else
#define MARGINET_DISPATCH(backend, kernel, ...)                                          \
  ((backend) == ::marginet::Backend::cuda                                                \
       ? throw ::marginet::usage_error("the CUDA backend was not built into this binary") \
       : ::marginet::kernels::cpu::kernel(__VA_ARGS__))
#endif
