// libFuzzer target for the service's request decoder (service/margin/protocol.hpp): any bytes must end
// in a decoded request or a protocol_error (turned into a well-formed `error` reply) — never a
// crash, a leak, undefined behaviour or another exception (which libFuzzer reports as a crash).
// Built with clang only: scripts/fuzz.sh (or fuzz/CMakeLists.txt when the compiler is clang).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "service/margin/protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace marginet::protocol;
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  try {
    const Request r = decode_request(frame);
    (void)encode_pong(r.id_raw, 0.0);  // the id is echoed as raw msgpack: it must re-encode
  } catch (const protocol_error& e) {
    (void)encode_error(e.id_raw().empty() ? nil_id() : e.id_raw(), e.code(), e.what());
  }
  return 0;
}
