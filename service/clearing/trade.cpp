#include "service/clearing/trade.hpp"

#include <sodium.h>

#include <array>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "models/errors.hpp"

namespace marginet {

namespace {

void ensure_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) MARGINET_FAIL("libsodium failed to initialise");
}

std::string to_hex(const unsigned char* bytes, std::size_t n) {
  // Not secret data (digests, public keys, signatures) except in key generation, where the
  // table lookup's timing does not matter either (no attacker measures it).
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

/// Appends `s` as a MessagePack str, the same bytes msgpack-cxx's packer writes for a
/// std::string: fixstr (< 32 bytes), str8 (< 256), str16 (< 65536), str32.
void pack_str(std::string& out, std::string_view s) {
  const std::size_t n = s.size();
  if (n < 32) {
    out += static_cast<char>(0xa0 | n);
  } else if (n < 256) {
    out += static_cast<char>(0xd9);
    out += static_cast<char>(n);
  } else if (n < 65536) {
    out += static_cast<char>(0xda);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xff);
  } else {
    out += static_cast<char>(0xdb);
    for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xff);
  }
  out.append(s.data(), n);
}

/// Exactly `n` bytes from `hex` (2n hex digits, either case); false otherwise.
bool from_hex(std::string_view hex, unsigned char* out, std::size_t n) {
  if (hex.size() != 2 * n) return false;
  for (char c : hex)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  std::size_t len = 0;
  return sodium_hex2bin(out, n, hex.data(), hex.size(), nullptr, &len, nullptr) == 0 && len == n;
}

bool is_hex(std::string_view s) {
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool digits(std::string_view s, std::size_t at, std::size_t n, int& value) {
  value = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return false;
    value = value * 10 + (s[i] - '0');
  }
  return true;
}

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

}  // namespace

const char* to_string(Side side) { return side == Side::buy ? "buy" : "sell"; }

std::optional<Side> parse_side(std::string_view text) {
  const std::string t = lower(text);
  if (t == "buy") return Side::buy;
  if (t == "sell") return Side::sell;
  return std::nullopt;
}

std::optional<std::string> canonical_decimal(std::string_view t) {
  std::size_t i = 0;
  bool negative = false;
  if (!t.empty() && (t[0] == '+' || t[0] == '-')) {
    negative = t[0] == '-';
    ++i;
  }
  const std::size_t int_begin = i;
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
  std::string_view integer = t.substr(int_begin, i - int_begin);
  std::string_view fraction;
  if (i < t.size() && t[i] == '.') {
    const std::size_t frac_begin = ++i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    fraction = t.substr(frac_begin, i - frac_begin);
  }
  if (i != t.size() || (integer.empty() && fraction.empty())) return std::nullopt;
  while (!integer.empty() && integer.front() == '0') integer.remove_prefix(1);
  while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
  std::string out;
  if (integer.empty() && fraction.empty()) return std::string("0");  // never "-0"
  if (negative) out += '-';
  out += integer.empty() ? std::string_view("0") : integer;
  if (!fraction.empty()) {
    out += '.';
    out += fraction;
  }
  return out;
}

double quantity_value(std::int64_t quantity_units) {
  return std::strtod(quantity_text(quantity_units).c_str(), nullptr);
}

std::string quantity_text(std::int64_t quantity_units) {
  return *canonical_decimal(format_money(quantity_units, kQuantityScale));
}

bool is_valid_utc_time(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z
  if (s.size() < 20) return false;
  int year, month, day, hour, minute, second;
  if (!digits(s, 0, 4, year) || s[4] != '-' || !digits(s, 5, 2, month) || s[7] != '-' ||
      !digits(s, 8, 2, day) || s[10] != 'T' || !digits(s, 11, 2, hour) || s[13] != ':' ||
      !digits(s, 14, 2, minute) || s[16] != ':' || !digits(s, 17, 2, second))
    return false;
  std::size_t i = 19;
  if (s[i] == '.') {
    const std::size_t begin = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == begin || i - begin > 9) return false;
  }
  if (i + 1 != s.size() || s[i] != 'Z') return false;
  if (year < 1 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return false;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  const int days = kDays[month - 1] + (month == 2 && leap ? 1 : 0);
  return day >= 1 && day <= days;
}

std::optional<TradeFieldError> validate_trade(const TradeInput& in, Trade& out) {
  struct Id {
    const char* field;
    const std::string& value;
    std::string& target;
  };
  const Id ids[] = {{"source", in.source, out.source},
                    {"trade_id", in.trade_id, out.trade_id},
                    {"account", in.account, out.account},
                    {"instrument", in.instrument, out.instrument}};
  for (const Id& id : ids) {
    if (auto p = identifier_problem(id.value)) return TradeFieldError{id.field, in_quotes(id.value) + ": " + *p};
    id.target = id.value;
  }

  // Quantity: exact in units of 1e-8, non-zero; a side makes an unsigned quantity signed.
  std::int64_t units = 0;
  const MoneyStatus qs = parse_minor_units(in.quantity_text, kQuantityScale, units, Rounding::exact);
  if (qs == MoneyStatus::too_many_decimals)
    return TradeFieldError{"quantity", in_quotes(in.quantity_text) + ": more than " +
                                           std::to_string(kQuantityScale) + " decimals"};
  if (qs == MoneyStatus::overflow)
    return TradeFieldError{"quantity", in_quotes(in.quantity_text) + ": too large (does not fit 64-bit quantity units)"};
  if (qs != MoneyStatus::ok)
    return TradeFieldError{"quantity", in_quotes(in.quantity_text) + ": " + money_status_text(qs, kQuantityScale)};
  if (units == 0) return TradeFieldError{"quantity", in_quotes(in.quantity_text) + ": zero quantity"};
  if (in.side) {
    if (units < 0 || in.quantity_text.front() == '-')
      return TradeFieldError{"quantity", in_quotes(in.quantity_text) +
                                             ": must be positive when the side is given"};
    if (*in.side == Side::sell) units = -units;  // |units| ≤ INT64_MAX: negation is exact
  }
  out.quantity_units = units;

  Decimal price;
  const MoneyStatus ps = parse_decimal(in.price_text, price);
  if (ps == MoneyStatus::too_many_decimals)
    return TradeFieldError{"price", in_quotes(in.price_text) + ": more than 18 significant decimals"};
  if (ps == MoneyStatus::overflow)
    return TradeFieldError{"price", in_quotes(in.price_text) + ": too many digits (does not fit 64 bits)"};
  if (ps != MoneyStatus::ok)
    return TradeFieldError{"price", in_quotes(in.price_text) + ": " + money_status_text(ps, 0)};
  const std::string canonical_price = *canonical_decimal(in.price_text);
  if (canonical_price.front() == '-') return TradeFieldError{"price", in_quotes(in.price_text) + ": negative price"};
  out.price = canonical_price;
  out.price_value = price;

  if (!is_valid_utc_time(in.time))
    return TradeFieldError{"time", in_quotes(in.time) +
                                       ": not an ISO 8601 UTC time YYYY-MM-DDTHH:MM:SS[.fraction]Z"};
  out.time = in.time;

  if (!in.package_id.empty()) {
    if (auto p = identifier_problem(in.package_id))
      return TradeFieldError{"package_id", in_quotes(in.package_id) + ": " + *p};
  }
  out.package_id = in.package_id;

  if (!in.signature_hex.empty() &&
      (in.signature_hex.size() != 2 * crypto_sign_BYTES || !is_hex(in.signature_hex)))
    return TradeFieldError{"signature", "not an Ed25519 signature (128 hex digits)"};
  out.signature_hex = lower(in.signature_hex);
  return std::nullopt;
}

Trade parse_trade(const TradeInput& in) {
  Trade t;
  if (auto e = validate_trade(in, t)) throw input_error("", 0, e->field, e->what);
  return t;
}

std::string canonical_trade_bytes(const Trade& t) {
  // Written by hand (pack_str above), byte for byte what msgpack-cxx packs for an array of nine
  // std::strings (the test CanonicalBytesMatchPythonMsgpack holds Python's bytes): it runs for
  // every captured trade and msgpack's sbuffer costs an 8 KiB allocation and a copy.
  const std::string quantity = t.quantity();
  std::string out;
  out.reserve(64 + t.source.size() + t.trade_id.size() + t.account.size() + t.instrument.size() +
              quantity.size() + t.price.size() + t.time.size() + t.package_id.size());
  out += static_cast<char>(0x99);  // fixarray of 9
  for (std::string_view s : {std::string_view(kTradeEncodingTag), std::string_view(t.source),
                             std::string_view(t.trade_id), std::string_view(t.account),
                             std::string_view(t.instrument), std::string_view(quantity), std::string_view(t.price),
                             std::string_view(t.time), std::string_view(t.package_id)})
    pack_str(out, s);
  return out;
}

std::string trade_digest_hex(const Trade& trade) {
  ensure_sodium();
  const std::string bytes = canonical_trade_bytes(trade);
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return to_hex(h, sizeof h);
}

Ed25519Keypair generate_ed25519_keypair() {
  ensure_sodium();
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  Ed25519Keypair k{to_hex(pk, sizeof pk), to_hex(sk, sizeof sk)};
  sodium_memzero(sk, sizeof sk);
  return k;
}

Ed25519Keypair ed25519_keypair_from_seed(std::string_view seed_hex) {
  ensure_sodium();
  unsigned char seed[crypto_sign_SEEDBYTES];
  if (!from_hex(seed_hex, seed, sizeof seed))
    throw input_error("an Ed25519 seed is 64 hex digits");
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(pk, sk, seed);
  Ed25519Keypair k{to_hex(pk, sizeof pk), to_hex(sk, sizeof sk)};
  sodium_memzero(sk, sizeof sk);
  sodium_memzero(seed, sizeof seed);
  return k;
}

bool is_valid_public_key_hex(std::string_view text) {
  return text.size() == 2 * crypto_sign_PUBLICKEYBYTES && is_hex(text);
}

std::string sign_trade_hex(const Trade& trade, std::string_view secret_key_hex) {
  ensure_sodium();
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  if (secret_key_hex.size() == 2 * crypto_sign_SEEDBYTES) {
    unsigned char seed[crypto_sign_SEEDBYTES];
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    if (!from_hex(secret_key_hex, seed, sizeof seed))
      throw input_error("an Ed25519 secret key is 128 hex digits (or a 64-hex-digit seed)");
    crypto_sign_seed_keypair(pk, sk, seed);
    sodium_memzero(seed, sizeof seed);
  } else if (!from_hex(secret_key_hex, sk, sizeof sk)) {
    throw input_error("an Ed25519 secret key is 128 hex digits (or a 64-hex-digit seed)");
  }
  const std::string bytes = canonical_trade_bytes(trade);
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(bytes.data()),
                       bytes.size(), sk);
  sodium_memzero(sk, sizeof sk);
  return to_hex(sig, sizeof sig);
}

namespace {
/// A key file's text without surrounding whitespace.
std::string read_key_text(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) throw input_error(path, 0, "", std::string("cannot open the ") + what + " file");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}
}  // namespace

std::string read_public_key_file(const std::string& path) {
  std::string text = read_key_text(path, "public key");
  if (!is_valid_public_key_hex(text))
    throw input_error(path, 1, "", "not an Ed25519 public key: expected 64 hex digits (a NAME.sign.pub file)");
  return text;
}

std::string read_signing_key_file(const std::string& path) {
  std::string text = read_key_text(path, "signing key");
  if ((text.size() != 128 && text.size() != 64) || !is_hex(text))
    throw input_error(path, 1, "",
                      "not an Ed25519 signing key: expected 128 hex digits or a 64-hex-digit seed (a NAME.sign.key file)");
  return text;
}

bool verify_trade_signature(const Trade& trade, std::string_view public_key_hex) {
  ensure_sodium();
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sig[crypto_sign_BYTES];
  if (!from_hex(public_key_hex, pk, sizeof pk) || !from_hex(trade.signature_hex, sig, sizeof sig))
    return false;
  const std::string bytes = canonical_trade_bytes(trade);
  return crypto_sign_verify_detached(sig, reinterpret_cast<const unsigned char*>(bytes.data()),
                                     bytes.size(), pk) == 0;
}

}  // namespace marginet
