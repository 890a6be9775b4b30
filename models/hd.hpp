#pragma once
// MARGINET_HD marks the per-element maths that kernels run: `__host__ __device__` under nvcc,
// plain `inline` under the host compiler. Everything in models/ that a kernel calls on one
// element (one instrument, one scenario, one position) is written with it.

#if defined(__CUDACC__)
#define MARGINET_HD __host__ __device__ inline
#else
#define MARGINET_HD inline
#endif
