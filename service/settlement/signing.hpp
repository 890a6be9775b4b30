#pragma once
// Ed25519 keys of the CCP that sign the settlement ledger's tree heads (ledger.hpp, TreeHead),
// libsodium's crypto_sign, and the two files that hold them (`marginet keygen --signing NAME`):
//
//   NAME.sign.key  (mode 0600)   ed25519-secret-key = <128 hex: libsodium's secret key, seed || public key>
//                                public-key = <64 hex>
//   NAME.sign.pub                ed25519-public-key = <64 hex>
//
// Readers ignore blank lines and `#` comments, and also take the bare-hex files of `marginet
// members keygen` (the same key type under the same suffix: one line of 128 hex digits for the
// secret key, one of 64 for the public key). Every problem with a key file is an input_error
// naming the file, the line and the field; a secret key whose public half does not match its
// seed is refused (a damaged file would otherwise sign heads nobody can verify).
//
// The secret key is wiped from memory when a SigningKey goes away; it never appears in a message.

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace marginet {

/// An Ed25519 public key: what a verifier of tree heads holds.
struct VerifyKey {
  std::array<unsigned char, 32> bytes{};
  /// 64 lower-case hex digits.
  std::string hex() const;
  friend bool operator==(const VerifyKey& a, const VerifyKey& b) { return a.bytes == b.bytes; }
  friend bool operator!=(const VerifyKey& a, const VerifyKey& b) { return !(a == b); }
};

/// An Ed25519 key pair (libsodium layout: secret = 32-byte seed || 32-byte public key).
struct SigningKey {
  std::array<unsigned char, 64> secret{};
  VerifyKey public_key;

  SigningKey() = default;
  SigningKey(const SigningKey&) = default;
  SigningKey(SigningKey&&) = default;
  SigningKey& operator=(const SigningKey&) = default;
  SigningKey& operator=(SigningKey&&) = default;
  ~SigningKey();  // wipes `secret`
};

/// A fresh random key pair (libsodium crypto_sign_keypair).
SigningKey generate_signing_key();

/// Writes NAME.sign.key (mode 0600) and NAME.sign.pub (0644), each fsynced. usage_error when
/// either exists (never overwrites a key) or cannot be written; nothing is left behind then.
void write_signing_key_files(const SigningKey& key, const std::string& name);

/// Reads a NAME.sign.key file; input_error naming file, line and field when it is not one.
SigningKey read_signing_key(const std::string& path);
/// Reads a NAME.sign.pub file (or the public-key line of a NAME.sign.key file); input_error
/// naming file, line and field when it holds no public key.
VerifyKey read_verify_key(const std::string& path);
/// 64 hex digits (either case) as a key; nullopt otherwise.
std::optional<VerifyKey> verify_key_from_hex(std::string_view hex);

/// The detached Ed25519 signature of `message`, 128 lower-case hex digits.
std::string sign_message_hex(const SigningKey& key, std::string_view message);
/// True when `signature_hex` (128 hex digits) is a valid signature of `message` under `key`;
/// false for anything else, a malformed signature included.
bool verify_message_hex(const VerifyKey& key, std::string_view message, std::string_view signature_hex);

}  // namespace marginet
