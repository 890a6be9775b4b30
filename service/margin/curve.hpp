#pragma once
// Optional CURVE encryption of the service (ZeroMQ RFC 26) with a client key allow-list checked
// by a ZAP handler (RFC 27) on inproc://zeromq.zap.01.
//
// Key files (written by `marginet keygen NAME`):
//   NAME.key   the secret key file:   "public-key = <40 Z85 chars>\nsecret-key = <40 Z85 chars>\n"
//   NAME.pub   the public key file:   "public-key = <40 Z85 chars>\n"
// Allow-list file: one client public key per line (Z85, or a `public-key = ...` line); blank
// lines and `#` comments ignored. Keys never appear in logs.

#include <zmq.hpp>

#include <atomic>
#include <set>
#include <string>
#include <thread>

namespace marginet {

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 chars
  std::string secret_key;  // Z85, 40 chars (empty in a public key file)
};

/// A fresh key pair (libzmq's zmq_curve_keypair; needs libzmq built with CURVE).
CurveKeyPair generate_curve_keypair();
/// Writes NAME.key (mode 0600) and NAME.pub. usage_error when they exist or cannot be written.
void write_curve_key_files(const CurveKeyPair& keys, const std::string& name);
/// Reads a .key or .pub file; input_error naming the file and field when malformed.
CurveKeyPair read_curve_key_file(const std::string& path);
/// The entry read_curve_allow_list gives for a file that lists no key. It is no Z85 key, so it
/// matches no client: an allow-list without keys admits nobody (fail closed), whereas an empty
/// set (no allow-list given at all) admits any client holding the server's public key.
inline const std::string kCurveNoClient = "(no client)";

/// Reads an allow-list of client public keys: exactly those keys may connect; a file with no
/// keys (empty, or only comments) gives {kCurveNoClient}, which admits nobody.
std::set<std::string> read_curve_allow_list(const std::string& path);

/// Whether the ZAP handler admits a client with public key `client_z85`: every client when
/// `allowed_z85` is empty (no allow-list), else only the keys in it.
bool curve_client_admitted(const std::set<std::string>& allowed_z85, const std::string& client_z85);
/// True for 40 characters of the Z85 alphabet.
bool is_z85_key(const std::string& key);

struct CurveServerOptions {
  std::string secret_key_file;  // the server's NAME.key; CURVE is off when empty
  std::string allow_list_file;  // client public keys allowed (a file without keys: nobody);
                                // empty: no allow-list, any client with the server key
  std::string domain = "marginet";
  bool enabled() const { return !secret_key_file.empty(); }
};

/// The ZAP handler: a thread answering libzmq's authentication requests for `domain` from the
/// allow-list (curve_client_admitted: an empty set admits every client, {kCurveNoClient} none).
/// Must outlive the sockets it guards; created before they bind.
class ZapHandler {
 public:
  ZapHandler(zmq::context_t& context, std::set<std::string> allowed_z85, std::string domain);
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  unsigned long long accepted() const { return accepted_.load(); }
  unsigned long long denied() const { return denied_.load(); }

 private:
  void serve();
  zmq::socket_t socket_;
  std::set<std::string> allowed_;  // Z85
  std::string domain_;
  std::atomic<bool> stop_{false};
  std::atomic<unsigned long long> accepted_{0}, denied_{0};
  std::thread thread_;
};

/// Server side: CURVE on, the secret key set, ZAP domain set and enforced.
void enable_curve_server(zmq::socket_t& socket, const CurveKeyPair& server_keys, const std::string& domain);
/// Client side: the server's public key and the client's key pair.
void enable_curve_client(zmq::socket_t& socket, const std::string& server_public_z85, const CurveKeyPair& client_keys);

}  // namespace marginet
