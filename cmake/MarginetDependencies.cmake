# Every dependency comes from a Debian package (see scripts/install-deps.sh).
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Threads REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CURL REQUIRED)
find_package(CLI11 REQUIRED)
find_package(spdlog REQUIRED)
find_package(cppzmq REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)

# msgpack-cxx is header-only; we use it without Boost.
find_path(MSGPACK_INCLUDE_DIR msgpack.hpp REQUIRED)
add_library(marginet_msgpack INTERFACE)
target_include_directories(marginet_msgpack SYSTEM INTERFACE ${MSGPACK_INCLUDE_DIR})
target_compile_definitions(marginet_msgpack INTERFACE MSGPACK_NO_BOOST)

# Thrust/CUB (CCCL): from the CUDA toolkit when present, else Debian's libthrust-dev.
find_path(MARGINET_CCCL_INCLUDE_DIR thrust/version.h
  HINTS /usr/local/cuda/include/cccl /usr/local/cuda/targets/x86_64-linux/include/cccl
        /usr/local/cuda/include /usr/include
  NO_DEFAULT_PATH)
if(NOT MARGINET_CCCL_INCLUDE_DIR)
  message(FATAL_ERROR "Thrust headers not found: install the CUDA toolkit or Debian's libthrust-dev")
endif()
file(STRINGS "${MARGINET_CCCL_INCLUDE_DIR}/thrust/version.h" _thrust_version_line
     REGEX "^#define THRUST_VERSION [0-9]+")
string(REGEX MATCH "[0-9]+" MARGINET_THRUST_VERSION "${_thrust_version_line}")
message(STATUS "Thrust ${MARGINET_THRUST_VERSION} from ${MARGINET_CCCL_INCLUDE_DIR}")
