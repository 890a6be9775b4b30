// `marginet members add|key|list|keygen` and `marginet accounts add|set|list`: who may trade in
// the clearing store (SPEC §9, docs/clearing.md "Command line").
//
//   marginet members add NAME --store STORE [--pubkey FILE]    FILE: the 64-hex Ed25519 public key
//   marginet members key NAME --store STORE --pubkey FILE|--none   set or remove the member's key
//   marginet members list --store STORE                        name,public_key,created_at
//   marginet members keygen NAME [--dir D]   NAME.sign.key (secret: 128 hex, mode 0600) and
//       NAME.sign.pub (64 hex): the Ed25519 keys a member's client signs trades with
//       (service/clearing/trade.hpp sign_trade_hex) — not the CURVE keys of `marginet keygen`.
//   marginet accounts add ACCOUNT --member NAME --store STORE [--pretrade-headroom X]
//   marginet accounts set ACCOUNT --store STORE --pretrade-headroom X|--no-pretrade-check
//   marginet accounts list --store STORE                       account,member,pretrade_headroom
//
// add/key/set open the store as writer (exit 2 "... locked by another writer" while a server or
// an import holds it); list opens it as reader.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "models/errors.hpp"
#include "service/cli/common.hpp"
#include "service/cli/table.hpp"
#include "service/clearing/clearing_store.hpp"
#include "service/clearing/trade.hpp"

namespace marginet::cli {

namespace {

struct MembersOptions {
  std::string store, name, pubkey, dir = ".", member;
  bool none = false;
  double headroom_value = 0;
  std::optional<double> headroom;  // --pretrade-headroom when given
  bool no_check = false;
};

std::unique_ptr<ClearingStore> open_store(const std::string& path, OpenMode mode) {
  if (path.empty()) throw usage_error("--store STORE is required");
  return open_clearing_store(path, mode);
}

/// Writes `text` to a new file with `mode`; refuses to overwrite.
void write_new_file(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST) throw usage_error(path + " exists; not overwriting a key file");
    throw usage_error("cannot write " + path + ": " + std::strerror(errno));
  }
  ::fchmod(fd, mode);  // whatever the umask
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw usage_error("cannot write " + path);
}

void run_keygen(const MembersOptions& o) {
  if (auto p = identifier_problem(o.name)) throw usage_error("members keygen: name '" + o.name + "': " + *p);
  if (o.name.find('/') != std::string::npos) throw usage_error("members keygen: NAME is a name, use --dir for the folder");
  const std::filesystem::path dir(o.dir);
  if (!std::filesystem::is_directory(dir)) throw usage_error("members keygen: --dir " + o.dir + " is not a folder");
  const std::string key_path = (dir / (o.name + ".sign.key")).string();
  const std::string pub_path = (dir / (o.name + ".sign.pub")).string();
  for (const auto& p : {key_path, pub_path})
    if (std::filesystem::exists(p)) throw usage_error(p + " exists; not overwriting a key file");
  const Ed25519Keypair keys = generate_ed25519_keypair();
  write_new_file(key_path, keys.secret_key_hex + "\n", 0600);
  write_new_file(pub_path, keys.public_key_hex + "\n", 0644);
  std::cout << "public-key = " << keys.public_key_hex << "\n"
            << "wrote " << key_path << " (secret, Ed25519 signing key) and " << pub_path << "\n";
}

void run_members_list(const CommonOptions& common, const MembersOptions& o) {
  auto store = open_store(o.store, OpenMode::reader);
  Table t;
  t.columns = {"name", "public_key", "created_at"};
  for (const MemberInfo& m : store->members()) t.add_row({m.name, m.public_key_hex.value_or(""), m.created_at});
  OutputSink sink(common.out);
  write_table(sink.stream(), t, common.format);
}

void run_accounts_list(const CommonOptions& common, const MembersOptions& o) {
  auto store = open_store(o.store, OpenMode::reader);
  const std::vector<AccountInfo> accounts = store->accounts();
  OutputSink sink(common.out);
  if (common.format == "json") {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const AccountInfo& a : accounts) {
      nlohmann::ordered_json j;
      j["account"] = a.account;
      j["member"] = a.member;
      j["pretrade_headroom"] = a.pretrade_headroom ? nlohmann::ordered_json(*a.pretrade_headroom) : nullptr;
      out.push_back(std::move(j));
    }
    sink.stream() << out.dump(2) << "\n";
    return;
  }
  Table t;
  t.columns = {"account", "member", "pretrade_headroom"};  // empty: no pre-trade check
  for (const AccountInfo& a : accounts)
    t.add_row({a.account, a.member, a.pretrade_headroom ? format_double(*a.pretrade_headroom) : std::string()});
  write_table(sink.stream(), t, common.format);
}

void say(const CommonOptions& common, const std::string& text) {
  if (!common.quiet) std::cerr << text << "\n";
}

}  // namespace

void add_members_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<MembersOptions>();
  CLI::App* cmd = app.add_subcommand("members", "Clearing members and their trade-signing keys");
  cmd->require_subcommand(1);

  CLI::App* add = cmd->add_subcommand(
      "add", "Register a member; with --pubkey its trades must be signed (Ed25519 over the canonical trade)");
  add->add_option("NAME", o->name, "Member name")->required();
  add->add_option("--store", o->store, "Clearing store (SQLite file)")->required();
  add->add_option("--pubkey", o->pubkey, "File holding the member's Ed25519 public key (64 hex, NAME.sign.pub)");
  add->callback([&common, o] {
    auto store = open_store(o->store, OpenMode::writer);
    std::optional<std::string> key;
    if (!o->pubkey.empty()) key = read_public_key_file(o->pubkey);
    store->add_member(o->name, key);
    say(common, "member '" + o->name + "' added" + (key ? " with a signing key" : ""));
  });

  CLI::App* key = cmd->add_subcommand(
      "key", "Set (--pubkey FILE) or remove (--none) a member's signing key; applies to trades recorded from now on");
  key->add_option("NAME", o->name, "Member name")->required();
  key->add_option("--store", o->store, "Clearing store (SQLite file)")->required();
  auto* pub = key->add_option("--pubkey", o->pubkey, "File holding the new Ed25519 public key (64 hex)");
  auto* none = key->add_flag("--none", o->none, "Remove the key: trades need no signature from now on");
  pub->excludes(none);
  key->callback([&common, o] {
    if (o->pubkey.empty() == !o->none) throw usage_error("members key: give exactly one of --pubkey FILE or --none");
    auto store = open_store(o->store, OpenMode::writer);
    std::optional<std::string> k;
    if (!o->none) k = read_public_key_file(o->pubkey);
    store->set_member_key(o->name, k);
    say(common, "member '" + o->name + "': " + (k ? "signing key set" : "signing key removed"));
  });

  CLI::App* list = cmd->add_subcommand("list", "Members: name,public_key,created_at");
  list->add_option("--store", o->store, "Clearing store (SQLite file)")->required();
  list->callback([&common, o] { run_members_list(common, *o); });

  CLI::App* keygen = cmd->add_subcommand(
      "keygen",
      "Generate a member's Ed25519 trade-signing key pair: NAME.sign.key (secret, 128 hex, mode 0600) and "
      "NAME.sign.pub (64 hex; give it to `members add --pubkey`). Not the CURVE keys of `marginet keygen`.");
  keygen->add_option("NAME", o->name, "Member name (file prefix)")->required();
  keygen->add_option("--dir", o->dir, "Folder of the key files")->capture_default_str();
  keygen->callback([o] { run_keygen(*o); });
}

void add_accounts_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<MembersOptions>();
  CLI::App* cmd = app.add_subcommand("accounts", "Clearing accounts: owner member and pre-trade headroom");
  cmd->require_subcommand(1);
  auto check_headroom = [](const MembersOptions& x) {
    if (x.headroom && (!std::isfinite(*x.headroom) || *x.headroom < 0))
      throw usage_error("--pretrade-headroom must be a finite number >= 0");
  };

  CLI::App* add = cmd->add_subcommand(
      "add", "Register an account under a member (before its first trade; else it is owned by the member of its name)");
  add->add_option("ACCOUNT", o->name, "Account")->required();
  add->add_option("--member", o->member, "Owning member (must exist: `members add`)")->required();
  add->add_option("--store", o->store, "Clearing store (SQLite file)")->required();
  auto* ah = add->add_option("--pretrade-headroom", o->headroom_value, "Pre-trade headroom (quote currency; default: no check)");
  add->callback([&common, o, check_headroom, ah] {
    if (ah->count() > 0) o->headroom = o->headroom_value;
    check_headroom(*o);
    auto store = open_store(o->store, OpenMode::writer);
    store->add_account(o->name, o->member);
    if (o->headroom) store->set_pretrade_headroom(o->name, o->headroom);
    say(common, "account '" + o->name + "' added under member '" + o->member + "'");
  });

  CLI::App* set = cmd->add_subcommand("set", "Set (--pretrade-headroom X) or clear (--no-pretrade-check) the pre-trade headroom");
  set->add_option("ACCOUNT", o->name, "Account")->required();
  set->add_option("--store", o->store, "Clearing store (SQLite file)")->required();
  auto* h = set->add_option("--pretrade-headroom", o->headroom_value, "Pre-trade headroom (quote currency)");
  auto* n = set->add_flag("--no-pretrade-check", o->no_check, "No pre-trade check for this account");
  h->excludes(n);
  set->callback([&common, o, check_headroom, h] {
    if (h->count() > 0) o->headroom = o->headroom_value;
    if (o->headroom.has_value() == o->no_check)
      throw usage_error("accounts set: give exactly one of --pretrade-headroom X or --no-pretrade-check");
    check_headroom(*o);
    auto store = open_store(o->store, OpenMode::writer);
    store->set_pretrade_headroom(o->name, o->no_check ? std::nullopt : o->headroom);
    say(common, "account '" + o->name + "': " +
                    (o->headroom ? "pre-trade headroom " + format_double(*o->headroom) : std::string("no pre-trade check")));
  });

  CLI::App* list = cmd->add_subcommand("list", "Accounts: account,member,pretrade_headroom (empty: no check)");
  list->add_option("--store", o->store, "Clearing store (SQLite file)")->required();
  list->callback([&common, o] { run_accounts_list(common, *o); });
}

}  // namespace marginet::cli
