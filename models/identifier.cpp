#include "models/identifier.hpp"

#include <array>
#include <cstdint>

namespace marginet {

std::optional<std::string> identifier_problem(std::string_view id, std::size_t max_bytes) {
  if (id.empty()) return std::string("empty");
  if (id.size() > max_bytes) return "longer than " + std::to_string(max_bytes) + " bytes";
  std::size_t i = 0;
  while (i < id.size()) {
    const auto c = static_cast<unsigned char>(id[i]);
    std::uint32_t cp = 0;
    std::size_t len = 0;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      len = 2;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      len = 3;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      len = 4;
    } else {
      return std::string("not valid UTF-8");
    }
    if (i + len > id.size()) return std::string("not valid UTF-8");
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(id[i + k]);
      if ((cc & 0xC0) != 0x80) return std::string("not valid UTF-8");
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    static constexpr std::array<std::uint32_t, 5> kMin = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return std::string("not valid UTF-8");
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F))
      return std::string("contains a control character");
    i += len;
  }
  return std::nullopt;
}

}  // namespace marginet
