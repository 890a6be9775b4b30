#include "service/settlement/signing.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <utility>

#include "models/errors.hpp"

namespace marginet {

static_assert(crypto_sign_SECRETKEYBYTES == 64 && crypto_sign_PUBLICKEYBYTES == 32 && crypto_sign_BYTES == 64,
              "SigningKey and VerifyKey hold libsodium's Ed25519 sizes");

namespace {

constexpr const char* kSecretField = "ed25519-secret-key";
constexpr const char* kSecretPublicField = "public-key";  // the public half, in the secret key file
constexpr const char* kPublicField = "ed25519-public-key";
// A key file is a few lines; anything larger is not one (and is not read into memory whole).
constexpr std::uintmax_t kMaxKeyFileBytes = 64 * 1024;

void ensure_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) MARGINET_FAIL("libsodium failed to initialise");
}

std::string to_hex(const unsigned char* bytes, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

bool is_hex(std::string_view s) {
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

/// Exactly `n` bytes from 2n hex digits (either case); false otherwise.
bool from_hex(std::string_view hex, unsigned char* out, std::size_t n) {
  if (hex.size() != 2 * n || !is_hex(hex)) return false;
  std::size_t len = 0;
  return sodium_hex2bin(out, n, hex.data(), hex.size(), nullptr, &len, nullptr) == 0 && len == n;
}

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

struct FieldValue {
  long line = 0;
  std::string value;
};

/// The `field = value` lines of a key file (bare hex lines named by their length: 128 digits
/// the secret key, 64 the public key, as `members keygen` writes them). input_error for a file
/// that cannot be read, a line that is neither, or a field given twice. Values are never quoted
/// in a message: one may be a secret key.
std::map<std::string, FieldValue> read_key_fields(const std::string& path, const char* what) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) throw input_error(path, 0, "", std::string("cannot open the ") + what + " file");
  if (!std::filesystem::is_regular_file(status)) throw input_error(path, 0, "", std::string("not a ") + what + " file (not a regular file)");
  const auto bytes = std::filesystem::file_size(path, ec);
  if (ec || bytes > kMaxKeyFileBytes)
    throw input_error(path, 0, "", std::string("not a ") + what + " file (larger than 64 KiB)");
  std::ifstream in(path);
  if (!in) throw input_error(path, 0, "", std::string("cannot open the ") + what + " file");
  std::map<std::string, FieldValue> fields;
  std::string raw;
  long n = 0;
  while (std::getline(in, raw)) {
    ++n;
    const std::string line = trim(raw);
    if (line.empty() || line[0] == '#') continue;
    std::string field, value;
    if (const auto eq = line.find('='); eq != std::string::npos) {
      field = trim(std::string_view(line).substr(0, eq));
      value = trim(std::string_view(line).substr(eq + 1));
    } else if (is_hex(line) && (line.size() == 128 || line.size() == 64)) {
      field = line.size() == 128 ? kSecretField : kPublicField;
      value = line;
    } else {
      throw input_error(path, n, "", std::string("expected 'field = value' (a ") + what + " file: " +
                                         (std::string(what) == "signing key" ? "NAME.sign.key" : "NAME.sign.pub") + ")");
    }
    if (field.size() > 64) field = field.substr(0, 64) + "...";
    if (auto it = fields.find(field); it != fields.end())
      throw input_error(path, n, field, "given twice (also on line " + std::to_string(it->second.line) + ")");
    fields[field] = {n, value};
  }
  if (in.bad()) throw input_error(path, n, "", std::string("cannot read the ") + what + " file");
  return fields;
}

/// Writes a new file (O_EXCL: never over an existing one) with `mode` whatever the umask, and
/// fsyncs it. usage_error when it exists or cannot be written.
void write_new_file(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST) throw usage_error(path + " exists; not overwriting a key file");
    throw usage_error("cannot write " + path + ": " + std::strerror(errno));
  }
  bool ok = ::fchmod(fd, mode) == 0;
  std::size_t done = 0;
  while (ok && done < text.size()) {
    const ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    if (ok) done += static_cast<std::size_t>(w);
  }
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    throw usage_error("cannot write " + path);
  }
}

}  // namespace

std::string VerifyKey::hex() const { return to_hex(bytes.data(), bytes.size()); }

SigningKey::~SigningKey() { sodium_memzero(secret.data(), secret.size()); }

SigningKey generate_signing_key() {
  ensure_sodium();
  SigningKey k;
  crypto_sign_keypair(k.public_key.bytes.data(), k.secret.data());
  return k;
}

void write_signing_key_files(const SigningKey& key, const std::string& name) {
  const std::string key_path = name + ".sign.key", pub_path = name + ".sign.pub";
  for (const auto& p : {key_path, pub_path})
    if (std::filesystem::exists(p)) throw usage_error(p + " exists; not overwriting a key file");
  std::string secret_text = std::string(kSecretField) + " = " + to_hex(key.secret.data(), key.secret.size()) +
                            "\n" + kSecretPublicField + " = " + key.public_key.hex() + "\n";
  try {
    write_new_file(key_path, secret_text, 0600);
  } catch (...) {
    sodium_memzero(secret_text.data(), secret_text.size());
    throw;
  }
  sodium_memzero(secret_text.data(), secret_text.size());
  try {
    write_new_file(pub_path, std::string(kPublicField) + " = " + key.public_key.hex() + "\n", 0644);
  } catch (...) {
    ::unlink(key_path.c_str());  // both or neither: a secret key without its public file is of no use
    throw;
  }
}

SigningKey read_signing_key(const std::string& path) {
  ensure_sodium();
  auto fields = read_key_fields(path, "signing key");
  for (const auto& [field, fv] : fields) {
    if (field == kPublicField)
      throw input_error(path, fv.line, field, "a public key file: the signing key is the NAME.sign.key file beside it");
    if (field != kSecretField && field != kSecretPublicField)
      throw input_error(path, fv.line, field, std::string("unknown field (expected ") + kSecretField + " and " +
                                                  kSecretPublicField + ")");
  }
  const auto secret = fields.find(kSecretField);
  if (secret == fields.end()) throw input_error(path, 0, kSecretField, "missing");
  SigningKey k;
  const bool parsed = from_hex(secret->second.value, k.secret.data(), k.secret.size());
  sodium_memzero(secret->second.value.data(), secret->second.value.size());
  if (!parsed) throw input_error(path, secret->second.line, kSecretField, "expected 128 hex digits");
  // libsodium's secret key is seed || public key: both halves must belong together, else the
  // key would sign with one public key and claim another.
  SigningKey derived;
  crypto_sign_seed_keypair(derived.public_key.bytes.data(), derived.secret.data(), k.secret.data());
  if (sodium_memcmp(derived.secret.data(), k.secret.data(), k.secret.size()) != 0)
    throw input_error(path, secret->second.line, kSecretField,
                      "not an Ed25519 secret key: its public half does not belong to its seed");
  k.public_key = derived.public_key;
  if (const auto pub = fields.find(kSecretPublicField); pub != fields.end()) {
    const auto stated = verify_key_from_hex(pub->second.value);
    if (!stated) throw input_error(path, pub->second.line, kSecretPublicField, "expected 64 hex digits");
    if (!(*stated == k.public_key))
      throw input_error(path, pub->second.line, kSecretPublicField, "does not match the secret key");
  }
  return k;
}

VerifyKey read_verify_key(const std::string& path) {
  const auto fields = read_key_fields(path, "public key");
  for (const auto& [field, fv] : fields) {
    // Verifiers are given the public file only: a secret key has no business on their side.
    if (field == kSecretField)
      throw input_error(path, fv.line, field, "a secret key file: give the NAME.sign.pub file beside it");
    if (field != kPublicField)
      throw input_error(path, fv.line, field, std::string("unknown field (expected ") + kPublicField + ")");
  }
  const auto pub = fields.find(kPublicField);
  if (pub == fields.end()) throw input_error(path, 0, kPublicField, "missing");
  const auto key = verify_key_from_hex(pub->second.value);
  if (!key) throw input_error(path, pub->second.line, kPublicField, "expected 64 hex digits");
  return *key;
}

std::optional<VerifyKey> verify_key_from_hex(std::string_view hex) {
  VerifyKey k;
  if (!from_hex(hex, k.bytes.data(), k.bytes.size())) return std::nullopt;
  return k;
}

std::string sign_message_hex(const SigningKey& key, std::string_view message) {
  ensure_sodium();
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                       key.secret.data());
  return to_hex(sig, sizeof sig);
}

bool verify_message_hex(const VerifyKey& key, std::string_view message, std::string_view signature_hex) {
  ensure_sodium();
  unsigned char sig[crypto_sign_BYTES];
  if (!from_hex(signature_hex, sig, sizeof sig)) return false;
  return crypto_sign_verify_detached(sig, reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                                     key.bytes.data()) == 0;
}

}  // namespace marginet
