#pragma once
// Little-endian byte strings for what ranks exchange and checkpoint: fixed-width integers,
// doubles by their bits (exact), length-prefixed strings. A reader that runs past the end or
// finds a length beyond what is left throws input_error naming `what` (a torn checkpoint, a
// message cut short), never reads out of bounds.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "models/errors.hpp"

namespace marginet::scaleout {

class ByteWriter {
 public:
  void u32(std::uint32_t v) { raw(&v, sizeof v); }
  void u64(std::uint64_t v) { raw(&v, sizeof v); }
  void f64(double v) { raw(&v, sizeof v); }
  void str(std::string_view s) {
    u64(s.size());
    out_.append(s.data(), s.size());
  }
  std::string& bytes() { return out_; }

 private:
  void raw(const void* p, std::size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

class ByteReader {
 public:
  ByteReader(std::string_view bytes, std::string what) : in_(bytes), what_(std::move(what)) {}
  std::uint32_t u32() { return fixed<std::uint32_t>(); }
  std::uint64_t u64() { return fixed<std::uint64_t>(); }
  double f64() { return fixed<double>(); }
  std::string str() {
    const std::uint64_t n = u64();
    need(n);
    std::string s(in_.substr(at_, n));
    at_ += n;
    return s;
  }
  /// A count of items each at least `item_bytes` long: refused when more than the rest could hold.
  std::uint64_t count(std::size_t item_bytes) {
    const std::uint64_t n = u64();
    if (item_bytes && n > (in_.size() - at_) / item_bytes) fail();
    return n;
  }
  bool done() const { return at_ == in_.size(); }

 private:
  template <class T>
  T fixed() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data() + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  void need(std::uint64_t n) {
    if (n > in_.size() - at_) fail();
  }
  [[noreturn]] void fail() const { throw input_error(what_ + ": cut short or corrupt"); }

  std::string_view in_;
  std::size_t at_ = 0;
  std::string what_;
};

}  // namespace marginet::scaleout
