// CURVE and the ZAP allow-list (service/margin/curve.hpp): an allow-list given admits exactly its
// keys — a file that lists none admits nobody (it once admitted everyone) — and no allow-list
// admits any client holding the server's public key. Checked on the admission rule and end to
// end: a real CURVE handshake on loopback through the ZapHandler.

#include <gtest/gtest.h>
#include <zmq.hpp>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "models/errors.hpp"
#include "service/margin/curve.hpp"

namespace marginet {
namespace {

bool have_curve() { return zmq_has("curve") != 0; }

class Curve : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_curve()) GTEST_SKIP() << "libzmq built without CURVE";
    dir_ = ::testing::TempDir() + "/marginet_test_curve_" + std::to_string(getpid());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

TEST_F(Curve, AllowListWithoutKeysAdmitsNobody) {
  const CurveKeyPair client = generate_curve_keypair();
  for (const std::string& text : {std::string(), std::string("\n\n"), std::string("# all keys revoked\n  # " + client.public_key + "\n")}) {
    const std::set<std::string> allowed = read_curve_allow_list(write("empty.txt", text));
    EXPECT_FALSE(allowed.empty());  // never "no allow-list"
    EXPECT_FALSE(curve_client_admitted(allowed, client.public_key));
    EXPECT_FALSE(curve_client_admitted(allowed, kCurveNoClient));
  }
}

TEST_F(Curve, AllowListAdmitsExactlyItsKeys) {
  const CurveKeyPair listed = generate_curve_keypair(), other = generate_curve_keypair();
  const std::set<std::string> allowed =
      read_curve_allow_list(write("allowed.txt", "# desk A\n" + listed.public_key + "\n\npublic-key = " + listed.public_key + "\n"));
  EXPECT_EQ(allowed, (std::set<std::string>{listed.public_key}));
  EXPECT_TRUE(curve_client_admitted(allowed, listed.public_key));
  EXPECT_FALSE(curve_client_admitted(allowed, other.public_key));
}

TEST_F(Curve, KeysWithZ85HashAndEqualsAreKeysNotCommentsOrSettings) {
  // Z85's alphabet has '#' and '=' (a key cannot start with '#': that group would exceed 2^32).
  const std::string hash_key = "a#" + std::string(38, 'a'), equals_key = std::string(20, 'b') + "=" + std::string(19, 'c');
  const std::set<std::string> allowed = read_curve_allow_list(
      write("z85.txt", hash_key + "\n" + equals_key + "\n# " + hash_key + "\npublic-key = " + equals_key + "\n"));
  EXPECT_EQ(allowed, (std::set<std::string>{hash_key, equals_key}));
  EXPECT_THROW(read_curve_allow_list(write("bad.txt", "secret-key = " + equals_key + "\n")), input_error);
}

TEST_F(Curve, NoAllowListAdmitsAnyClient) {
  EXPECT_TRUE(curve_client_admitted({}, generate_curve_keypair().public_key));
}

/// Whether a CURVE client with `client` keys gets a message through to a server guarded by a
/// ZapHandler with `allowed`; `denied` receives the handler's count of refusals.
bool handshake_admitted(const std::set<std::string>& allowed, const CurveKeyPair& server, const CurveKeyPair& client,
                        unsigned long long& denied) {
  zmq::context_t context;
  ZapHandler zap(context, allowed, "marginet-test");  // outlives the sockets below
  zmq::socket_t router(context, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  enable_curve_server(router, server, "marginet-test");
  router.bind("tcp://127.0.0.1:*");
  const std::string endpoint = router.get(zmq::sockopt::last_endpoint);
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  enable_curve_client(dealer, server.public_key, client);
  dealer.connect(endpoint);
  (void)dealer.send(zmq::str_buffer("hello"), zmq::send_flags::dontwait);
  bool got = false;
  zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  while (!got && std::chrono::steady_clock::now() < deadline) {
    if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) == 0) continue;
    zmq::message_t identity, body;
    if (router.recv(identity, zmq::recv_flags::dontwait) && router.recv(body, zmq::recv_flags::dontwait))
      got = body.to_string() == "hello";
  }
  denied = zap.denied();
  return got;
}

TEST_F(Curve, HandshakeThroughTheZapHandler) {
  const CurveKeyPair server = generate_curve_keypair(), client = generate_curve_keypair();
  unsigned long long denied = 0;
  // An allow-list file without keys: the client is refused (it used to get in).
  EXPECT_FALSE(handshake_admitted(read_curve_allow_list(write("none.txt", "# nobody\n")), server, client, denied));
  EXPECT_GE(denied, 1u);
  // Its key listed: admitted; another key listed only: refused.
  EXPECT_TRUE(handshake_admitted(read_curve_allow_list(write("one.txt", client.public_key + "\n")), server, client, denied));
  EXPECT_EQ(denied, 0u);
  EXPECT_FALSE(handshake_admitted({generate_curve_keypair().public_key}, server, client, denied));
  EXPECT_GE(denied, 1u);
  // No allow-list: any client holding the server's public key.
  EXPECT_TRUE(handshake_admitted({}, server, client, denied));
  EXPECT_EQ(denied, 0u);
}

}  // namespace
}  // namespace marginet
