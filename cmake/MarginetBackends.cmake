# Backend switch. The CPU backend (Thrust's OpenMP device system, compiled by the host
# compiler) is always built; the CUDA backend when nvcc is found (AUTO) or required (ON).
set(MARGINET_BACKENDS "cpu")
set(MARGINET_HAVE_CUDA OFF)

if(NOT MARGINET_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(MARGINET_HAVE_CUDA ON)
    list(APPEND MARGINET_BACKENDS "cuda")
    message(STATUS "CUDA backend: nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
  elseif(MARGINET_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MARGINET_CUDA=ON but no CUDA compiler was found")
  else()
    message(STATUS "CUDA backend: nvcc not found, building the CPU backend only")
  endif()
endif()

# marginet_add_kernels(<sources...>)
# Compiles each kernel source twice: by the host compiler with THRUST_DEVICE_SYSTEM=OMP into
# marginet_kernels_cpu (namespace marginet::kernels::cpu), and, when the CUDA backend is built,
# by nvcc into marginet_kernels_cuda (namespace marginet::kernels::gpu).
function(marginet_add_kernels)
  set(cpu_sources)
  foreach(src IN LISTS ARGN)
    get_filename_component(abs "${src}" ABSOLUTE)
    get_filename_component(name "${src}" NAME_WE)
    set(wrapper "${CMAKE_CURRENT_BINARY_DIR}/cpu/${name}.cpp")
    file(CONFIGURE OUTPUT "${wrapper}"
         CONTENT "// CPU backend of ${src}: the same source, Thrust's OpenMP device system.\n#include \"${abs}\"\n")
    list(APPEND cpu_sources "${wrapper}")
  endforeach()

  # CPU-only vector paths, dispatched at run time (kernels/cpu_simd.hpp); linked with
  # glibc's libmvec for the vector exp, log and erfc.
  file(GLOB simd_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/cpu_simd.cpp
       ${CMAKE_CURRENT_SOURCE_DIR}/simd/*.cpp)
  add_library(marginet_kernels_cpu STATIC ${cpu_sources} ${simd_sources})
  target_compile_definitions(marginet_kernels_cpu PRIVATE
    THRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP MARGINET_BACKEND_NS=cpu)
  target_include_directories(marginet_kernels_cpu SYSTEM PRIVATE ${MARGINET_CCCL_INCLUDE_DIR})
  target_link_libraries(marginet_kernels_cpu PUBLIC marginet_models OpenMP::OpenMP_CXX mvec m)
  target_compile_options(marginet_kernels_cpu PRIVATE ${MARGINET_WARNINGS})

  add_library(marginet_kernels INTERFACE)
  target_link_libraries(marginet_kernels INTERFACE marginet_kernels_cpu)

  if(MARGINET_HAVE_CUDA)
    add_library(marginet_kernels_cuda STATIC ${ARGN})
    target_compile_definitions(marginet_kernels_cuda PRIVATE MARGINET_BACKEND_NS=gpu)
    # --fmad=false: no fused multiply-add contraction, so that sums and products round exactly
    # as on the CPU backend (x86-64 baseline has no FMA) and integer-valued results match bitwise.
    target_compile_options(marginet_kernels_cuda PRIVATE
      $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr --extended-lambda --fmad=false -Xcompiler=-fopenmp>)
    target_link_libraries(marginet_kernels_cuda PUBLIC marginet_models CUDA::cudart_static)
    target_link_libraries(marginet_kernels INTERFACE marginet_kernels_cuda)
    target_compile_definitions(marginet_kernels INTERFACE MARGINET_HAVE_CUDA=1)
  endif()
endfunction()
