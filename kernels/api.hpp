#pragma once
// Declaring a kernel API once for both backends. Every kernel source is compiled twice (see
// cmake/MarginetBackends.cmake): into marginet::kernels::cpu by the host compiler and into
// marginet::kernels::gpu by nvcc. A public kernel header writes its entry points once:
//
//   MARGINET_KERNEL_API(
//   /// What it does.
//   void risk_arrays(const RiskArrayArgs& args);
//   )
//
// and gets the same declarations in both namespaces; host/dispatch.hpp picks one at run time.

#define MARGINET_KERNEL_API(...) \
  namespace cpu {                \
  __VA_ARGS__                    \
  }                              \
  namespace gpu {                \
  __VA_ARGS__                    \
  }
