#include "service/margin/curve.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <zmq.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "models/errors.hpp"

namespace marginet {

namespace {

// ZMQ_ZAP_ENFORCE_DOMAIN is a draft option of libzmq 4.3 (zmq.h hides it without
// ZMQ_BUILD_DRAFT_API); it is set when the library accepts it.
constexpr int kZapEnforceDomain = 93;

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

}  // namespace

bool is_z85_key(const std::string& key) {
  if (key.size() != 40) return false;
  std::array<std::uint8_t, 32> bin{};
  return zmq_z85_decode(bin.data(), key.c_str()) != nullptr;
}

CurveKeyPair generate_curve_keypair() {
  char pub[41] = {}, sec[41] = {};
  if (zmq_curve_keypair(pub, sec) != 0)
    throw usage_error(std::string("cannot generate a CURVE key pair: ") + zmq_strerror(zmq_errno()) +
                      " (libzmq built without CURVE?)");
  return CurveKeyPair{pub, sec};
}

void write_curve_key_files(const CurveKeyPair& keys, const std::string& name) {
  const std::string key_path = name + ".key", pub_path = name + ".pub";
  for (const auto& p : {key_path, pub_path})
    if (std::filesystem::exists(p)) throw usage_error(p + " exists; not overwriting a key file");
  {
    std::ofstream out(key_path);
    if (!out) throw usage_error("cannot write " + key_path);
    ::chmod(key_path.c_str(), 0600);
    out << "# marginet CURVE secret key file: keep private\n"
        << "public-key = " << keys.public_key << "\nsecret-key = " << keys.secret_key << "\n";
    if (!out) throw usage_error("cannot write " + key_path);
  }
  std::ofstream out(pub_path);
  if (!out) throw usage_error("cannot write " + pub_path);
  out << "# marginet CURVE public key file\npublic-key = " << keys.public_key << "\n";
  if (!out) throw usage_error("cannot write " + pub_path);
}

CurveKeyPair read_curve_key_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw input_error(path, 0, "", "cannot open the key file");
  CurveKeyPair keys;
  std::string line;
  long n = 0;
  while (std::getline(in, line)) {
    ++n;
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos) throw input_error(path, n, "", "expected 'public-key = ...' or 'secret-key = ...'");
    const std::string field = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    if (field != "public-key" && field != "secret-key") throw input_error(path, n, field, "unknown field");
    if (!is_z85_key(value)) throw input_error(path, n, field, "expected 40 characters of Z85");
    (field == "public-key" ? keys.public_key : keys.secret_key) = value;
  }
  if (keys.public_key.empty()) throw input_error(path, n, "public-key", "missing");
  return keys;
}

std::set<std::string> read_curve_allow_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw input_error(path, 0, "", "cannot open the allow-list");
  std::set<std::string> keys;
  std::string line;
  long n = 0;
  while (std::getline(in, line)) {
    ++n;
    line = trim(line);
    // A bare key first: Z85 has '#' and '=' in its alphabet, so a key may hold either (it
    // cannot start with '#': that group would exceed 2^32; a commented-out key stays a comment).
    if (is_z85_key(line)) {
      keys.insert(line);
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("public-key", 0) == 0) {
      const std::string rest = trim(line.substr(10));
      if (rest.empty() || rest[0] != '=') throw input_error(path, n, "public-key", "expected public-key = KEY");
      line = trim(rest.substr(1));
    }
    if (!is_z85_key(line)) throw input_error(path, n, "public-key", "expected 40 characters of Z85");
    keys.insert(line);
  }
  // An allow-list given but listing nobody admits nobody: never "no list, everyone".
  if (keys.empty()) keys.insert(kCurveNoClient);
  return keys;
}

bool curve_client_admitted(const std::set<std::string>& allowed_z85, const std::string& client_z85) {
  if (allowed_z85.empty()) return true;  // no allow-list: any client holding the server key
  return client_z85 != kCurveNoClient && allowed_z85.count(client_z85) > 0;
}

ZapHandler::ZapHandler(zmq::context_t& context, std::set<std::string> allowed_z85, std::string domain)
    : socket_(context, zmq::socket_type::rep), allowed_(std::move(allowed_z85)), domain_(std::move(domain)) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind("inproc://zeromq.zap.01");
  if (allowed_.size() == 1 && allowed_.count(kCurveNoClient))
    spdlog::warn("ZAP: the CURVE allow-list lists no client key: every client is refused");
  thread_ = std::thread([this] { serve(); });
}

ZapHandler::~ZapHandler() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ZapHandler::serve() {
  while (!stop_) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) == 0) continue;
    } catch (const zmq::error_t&) {
      continue;  // EINTR
    }
    std::vector<zmq::message_t> parts;
    try {
      while (true) {
        zmq::message_t m;
        if (!socket_.recv(m, zmq::recv_flags::dontwait)) break;
        const bool more = m.more();
        parts.push_back(std::move(m));
        if (!more || parts.size() > 16) break;
      }
    } catch (const zmq::error_t&) {
      continue;
    }
    // version, request id, domain, address, routing id, mechanism, credentials...
    if (parts.size() < 6) continue;
    const std::string version = parts[0].to_string(), request_id = parts[1].to_string();
    const std::string domain = parts[2].to_string(), mechanism = parts[5].to_string();
    bool ok = false;
    std::string user;
    if (version == "1.0" && domain == domain_ && mechanism == "CURVE" && parts.size() >= 7 && parts[6].size() == 32) {
      char z85[41] = {};
      zmq_z85_encode(z85, static_cast<const std::uint8_t*>(parts[6].data()), 32);
      user = z85;
      ok = curve_client_admitted(allowed_, user);
    }
    (ok ? accepted_ : denied_)++;
    if (!ok) spdlog::warn("ZAP: denied a {} client of domain '{}'", mechanism, domain);
    try {
      socket_.send(zmq::buffer(std::string("1.0")), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(std::string(ok ? "200" : "400")), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(std::string(ok ? "OK" : "client key not allowed")), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(ok ? user : std::string()), zmq::send_flags::sndmore);  // User-Id: the whole key
      socket_.send(zmq::message_t(), zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      spdlog::warn("ZAP: reply failed: {}", e.what());
    }
  }
}

void enable_curve_server(zmq::socket_t& socket, const CurveKeyPair& keys, const std::string& domain) {
  if (keys.secret_key.empty()) throw usage_error("the server key file has no secret-key");
  socket.set(zmq::sockopt::curve_server, true);
  socket.set(zmq::sockopt::curve_secretkey, keys.secret_key);
  socket.set(zmq::sockopt::zap_domain, domain);
  const int on = 1;
  if (zmq_setsockopt(socket.handle(), kZapEnforceDomain, &on, sizeof on) != 0)
    spdlog::info("zap_enforce_domain not available in this libzmq (draft option); ZAP still checks every client");
}

void enable_curve_client(zmq::socket_t& socket, const std::string& server_public_z85, const CurveKeyPair& client) {
  if (!is_z85_key(server_public_z85)) throw usage_error("the server public key is not 40 characters of Z85");
  if (client.secret_key.empty()) throw usage_error("the client key file has no secret-key");
  socket.set(zmq::sockopt::curve_serverkey, server_public_z85);
  socket.set(zmq::sockopt::curve_publickey, client.public_key);
  socket.set(zmq::sockopt::curve_secretkey, client.secret_key);
}

}  // namespace marginet
