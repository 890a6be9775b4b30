#pragma once
// Trades as the clearing store captures them (SPEC §9): the input as a client or a CSV row gives
// it, its validation into a Trade with exact quantities, the canonical encoding that digests
// (idempotency) and Ed25519 signatures (validity) are computed over.
//
//   TradeInput in{"desk-a", "T-1001", "ACC1", "BTC-PERPETUAL", "1.5", Side::sell, "64250.50",
//                 "2024-06-28T08:00:00Z"};
//   Trade t = parse_trade(in);            // quantity_units == -150000000, price == "64250.5"
//   std::string sig = sign_trade_hex(t, keys.secret_key_hex);
//
// Quantities: exact decimals with a fixed scale of 8 decimals (kQuantityScale): a "quantity unit"
// is 1e-8 of a contract or coin, counted in a signed int64 (buy > 0, sell < 0). More decimals
// than 8 are refused unless they are zeros; no rounding ever happens.
// Prices: exact decimals (models/money.hpp Decimal: int64 mantissa, up to 18 decimals), ≥ 0,
// kept as canonical text.
// Times: ISO 8601 UTC text `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (1 to 9 fraction digits), validated
// (real calendar date, hour < 24, seconds < 60) and kept verbatim: "…:00.5Z" and "…:00.50Z"
// are different contents.
// Identifiers (source, trade_id, account, instrument, package_id): 1 to 128 bytes of valid UTF-8
// without control characters (C0, DEL, C1); package_id may be empty (no package).
//
// Canonical decimal text: no '+', no leading zeros (one 0 before the point when the integer part
// is zero), no trailing zeros after the point, no trailing point, never "-0":
//   "+001.500" -> "1.5", "-0.0" -> "0", ".5" -> "0.5", "7." -> "7", "-00012" -> "-12".

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "models/identifier.hpp"
#include "models/money.hpp"

namespace marginet {

/// Decimals of a quantity: one quantity unit = 1e-8 contract (or coin).
constexpr int kQuantityScale = 8;
/// Longest identifier, in bytes.
constexpr std::size_t kMaxIdBytes = 128;
/// Version tag, first element of the canonical encoding.
inline constexpr const char* kTradeEncodingTag = "marginet-trade-v1";

enum class Side : std::uint8_t { buy, sell };
const char* to_string(Side side);
/// "buy" | "sell" (either case); nullopt otherwise.
std::optional<Side> parse_side(std::string_view text);

/// The canonical text of a decimal number (rules above); nullopt when `text` is not a decimal
/// (optional sign, digits, optional '.' and digits, at least one digit; no exponent, no spaces).
/// Any number of digits is accepted: this is a text transformation, not a parse into a type.
std::optional<std::string> canonical_decimal(std::string_view text);

/// Quantity units as canonical decimal text: -150000000 -> "-1.5", 1 -> "0.00000001".
std::string quantity_text(std::int64_t quantity_units);
/// Quantity units as the risk engine's double: the double nearest to the exact decimal
/// (strtod of quantity_text), so 1.5 is exactly 1.5 and 0.1 is the double of "0.1".
double quantity_value(std::int64_t quantity_units);

/// Why `id` is not a valid identifier (models/identifier.hpp), 128 bytes at most by default;
/// `max_bytes` is for other texts of the same rules (a cancel's reason).
inline std::optional<std::string> identifier_problem(std::string_view id) { return identifier_problem(id, kMaxIdBytes); }
/// True for `YYYY-MM-DDTHH:MM:SS[.fraction]Z` naming a real UTC time (rules above).
bool is_valid_utc_time(std::string_view text);

/// A trade as submitted (protocol message or CSV row), not yet validated.
struct TradeInput {
  std::string source;         // who reports the trade (venue, desk, RFQ platform)
  std::string trade_id;       // unique within the source; (source, trade_id) is the idempotency key
  std::string account;        // the clearing account; registered on first use (clearing_store.hpp)
  std::string instrument;     // instrument id (e.g. Deribit name)
  std::string quantity_text;  // signed decimal (buy > 0), or positive when `side` is given
  std::optional<Side> side;   // buy | sell; when given the quantity must be positive
  std::string price_text;     // decimal ≥ 0
  std::string time;           // execution time, ISO 8601 UTC
  std::string package_id;     // "" = not part of a package (block / RFQ trade of several legs)
  std::string signature_hex;  // "" = none; else 128 hex digits: Ed25519 detached signature over
                              // canonical_trade_bytes()
};

/// A validated trade: every field checked, numbers exact and canonical.
struct Trade {
  std::string source;
  std::string trade_id;
  std::string account;
  std::string instrument;
  std::int64_t quantity_units = 0;  // signed, non-zero, in 1e-8 (kQuantityScale)
  std::string price;                // canonical decimal text, ≥ 0
  Decimal price_value;              // the same price, exact
  std::string time;                 // validated ISO 8601 UTC text, verbatim
  std::string package_id;           // "" = none
  std::string signature_hex;        // "" or 128 lowercase hex digits (not part of the contents)

  /// Canonical signed quantity text ("-1.5").
  std::string quantity() const { return quantity_text(quantity_units); }
};

/// A field that failed validation: the field's name as in the CSV header ("source", "trade_id",
/// "account", "instrument", "quantity", "side", "price", "time", "package_id", "signature") and
/// what is wrong with it, naming the offending text.
struct TradeFieldError {
  std::string field;
  std::string what;
};

/// Validates `in` into `out`; nullopt on success, else the first field that is wrong. Checks the
/// fields only, not the store (known instrument, idempotency, signature validity are the
/// store's): a signature is only checked to be 128 hex digits here.
std::optional<TradeFieldError> validate_trade(const TradeInput& in, Trade& out);
/// The same, throwing input_error("", 0, field, what) on the first wrong field.
Trade parse_trade(const TradeInput& in);

/// The canonical encoding of a trade's contents (its signature excluded): a msgpack array of
/// nine strings, packed by msgpack-cxx as MessagePack str (fixstr / str8 / str16 / str32):
///   ["marginet-trade-v1", source, trade_id, account, instrument,
///    canonical signed quantity, canonical price, time, package_id]
/// A Python client reproduces it byte for byte (msgpack ≥ 1.0, str values, UTF-8):
///   import msgpack
///   data = msgpack.packb(["marginet-trade-v1", source, trade_id, account, instrument,
///                         quantity, price, time, package_id], use_bin_type=True)
///   # quantity: canonical signed text, e.g. "-1.5" for a sell of 1.5; price: canonical, "64250.5"
///   # package_id: "" when none.  Sign with PyNaCl: nacl.signing.SigningKey(seed32).sign(data).signature
/// (use_bin_type=True is msgpack's default since 1.0; it packs str as str8 like msgpack-cxx.)
std::string canonical_trade_bytes(const Trade& trade);

/// SHA-256 of canonical_trade_bytes(), lowercase hex (64 digits). Two submissions of one
/// (source, trade_id) are the same trade exactly when their digests are equal.
std::string trade_digest_hex(const Trade& trade);

/// An Ed25519 key pair as lowercase hex. secret_key_hex is libsodium's 64-byte secret key
/// (32-byte seed followed by the public key): 128 hex digits. Keep it secret.
struct Ed25519Keypair {
  std::string public_key_hex;  // 64 hex digits
  std::string secret_key_hex;  // 128 hex digits
};
/// A fresh random key pair (libsodium crypto_sign_keypair).
Ed25519Keypair generate_ed25519_keypair();
/// The key pair of a 32-byte seed given as 64 hex digits (deterministic; tests, PyNaCl keys).
/// input_error when the seed is not 64 hex digits.
Ed25519Keypair ed25519_keypair_from_seed(std::string_view seed_hex);
/// True when `text` is 64 hex digits (an Ed25519 public key's length; the curve point itself is
/// checked when a signature is verified).
bool is_valid_public_key_hex(std::string_view text);

/// The key held by a key file of `marginet members keygen` (surrounding whitespace ignored):
/// NAME.sign.pub, 64 hex digits; NAME.sign.key, 128 hex digits (or a 64-hex-digit seed).
/// input_error naming the file when it cannot be read or does not hold such a key.
std::string read_public_key_file(const std::string& path);
std::string read_signing_key_file(const std::string& path);

/// Ed25519 detached signature of canonical_trade_bytes(trade), 128 lowercase hex digits.
/// `secret_key_hex`: the 128-hex-digit secret key, or a 64-hex-digit seed. input_error otherwise.
std::string sign_trade_hex(const Trade& trade, std::string_view secret_key_hex);
/// True when trade.signature_hex is a valid signature of canonical_trade_bytes(trade) by
/// `public_key_hex`. False (never throws) on any malformed input.
bool verify_trade_signature(const Trade& trade, std::string_view public_key_hex);

}  // namespace marginet
