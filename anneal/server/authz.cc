// Bearer tokens with roles (see authz.h).
#include "anneal/server/authz.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace anneal {
namespace {

bool AllOf(absl::string_view s, absl::string_view extra) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        extra.find(c) == absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kReader:
      return "reader";
    case Role::kTrainer:
      return "trainer";
    case Role::kOperator:
      return "operator";
  }
  return "operator";
}

Role RequiredRole(absl::string_view method) {
  static constexpr absl::string_view kRead[] = {
      "GetSchedule", "ListSchedules",  "Evaluate",          "EvaluateRange",
      "Simulate",    "WatchSchedules", "ListMetricReports", "Diagnose"};
  static constexpr absl::string_view kTrain[] = {"Advance", "ReportMetrics"};
  for (absl::string_view m : kRead) {
    if (m == method) return Role::kReader;
  }
  for (absl::string_view m : kTrain) {
    if (m == method) return Role::kTrainer;
  }
  return Role::kOperator;  // Create, Update, Restart, Delete, Fork, Rewind,
                           // unknown
}

Sha256 HashToken(absl::string_view token) {
  Sha256 out;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(),
         out.data());
  return out;
}

std::string HexOf(const Sha256& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

absl::StatusOr<std::vector<TokenEntry>> ParseTokens(absl::string_view text) {
  std::vector<TokenEntry> out;
  absl::flat_hash_set<std::string> names;
  absl::flat_hash_set<std::string> hashes;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (size_t hash = line.find('#'); hash != absl::string_view::npos) {
      line = line.substr(0, hash);
    }
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    auto bad = [&](absl::string_view why) {
      // Never quotes the line: it may hold a secret by mistake.
      return absl::InvalidArgumentError(
          absl::StrCat("tokens file line ", line_number, ": ", why));
    };
    if (fields.size() < 3 || fields.size() > 4) {
      return bad(absl::StrCat("must be NAME ROLE SHA256 [KEY=VALUE], got ",
                              fields.size(), " fields"));
    }
    TokenEntry e;
    e.name = std::string(fields[0]);
    if (!AllOf(e.name, "._@-") || e.name.size() > 64) {
      return bad("the name must be 1 to 64 of [A-Za-z0-9._@-]");
    }
    if (!names.insert(e.name).second) {
      return bad(absl::StrCat("the name ", e.name, " is used twice"));
    }
    if (fields[1] == "reader") {
      e.role = Role::kReader;
    } else if (fields[1] == "trainer") {
      e.role = Role::kTrainer;
    } else if (fields[1] == "operator") {
      e.role = Role::kOperator;
    } else {
      return bad("the role must be reader, trainer or operator");
    }
    absl::string_view hex = fields[2];
    absl::ConsumePrefix(&hex, "sha256:");
    if (hex.size() != 64) {
      return bad(
          "the third field must be the token's SHA-256 as 64 hex digits "
          "(annealctl token hash, or: printf %s TOKEN | sha256sum)");
    }
    for (int i = 0; i < 32; ++i) {
      const int hi = HexDigit(hex[2 * i]);
      const int lo = HexDigit(hex[2 * i + 1]);
      if (hi < 0 || lo < 0) {
        return bad("the SHA-256 must be 64 hex digits");
      }
      e.hash[i] = static_cast<uint8_t>(hi * 16 + lo);
    }
    if (!hashes.insert(HexOf(e.hash)).second) {
      return bad("the same token hash appears twice");
    }
    if (fields.size() == 4) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(fields[3], absl::MaxSplits('=', 1));
      if (!AllOf(kv.first, "_-") || !AllOf(kv.second, "._-")) {
        return bad(
            "the label selector must be KEY=VALUE, KEY of [A-Za-z0-9_-] and "
            "VALUE of [A-Za-z0-9._-]");
      }
      e.label_key = std::string(kv.first);
      e.label_value = std::string(kv.second);
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::Status Authorizer::LoadText(absl::string_view text) {
  auto parsed = ParseTokens(text);
  if (!parsed.ok()) return parsed.status();
  auto tokens =
      std::make_shared<const std::vector<TokenEntry>>(*std::move(parsed));
  absl::MutexLock lock(&mu_);
  enabled_ = true;
  tokens_ = std::move(tokens);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  return absl::OkStatus();
}

absl::Status Authorizer::LoadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat("--tokens_file: cannot read ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (absl::Status s = LoadText(text.str()); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tokens_file ", path, ": ", s.message()));
  }
  return absl::OkStatus();
}

bool Authorizer::enabled() const {
  absl::MutexLock lock(&mu_);
  return enabled_;
}

size_t Authorizer::size() const {
  absl::MutexLock lock(&mu_);
  return tokens_ ? tokens_->size() : 0;
}

absl::StatusOr<Principal> Authorizer::Authenticate(
    bool present, absl::string_view header) const {
  std::shared_ptr<const std::vector<TokenEntry>> tokens;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (!enabled_) return Principal{};
    tokens = tokens_;
  }
  absl::string_view token = absl::StripAsciiWhitespace(header);
  if (!present || token.empty()) {
    return absl::UnauthenticatedError(
        "authorization: this server needs a bearer token (metadata "
        "'authorization: Bearer TOKEN'; annealctl --token or ANNEAL_TOKEN)");
  }
  if (token.size() < 7 ||
      !absl::EqualsIgnoreCase(token.substr(0, 7), "bearer ")) {
    return absl::UnauthenticatedError("authorization: must be 'Bearer TOKEN'");
  }
  token = absl::StripAsciiWhitespace(token.substr(7));
  const Sha256 presented = HashToken(token);
  // Every stored hash is compared, in constant time each, whichever matches.
  const TokenEntry* match = nullptr;
  for (const TokenEntry& e : *tokens) {
    const bool same =
        CRYPTO_memcmp(presented.data(), e.hash.data(), presented.size()) == 0;
    if (same) match = &e;
  }
  if (match == nullptr) {
    return absl::UnauthenticatedError(
        "authorization: the token is not valid (unknown to this server, or "
        "removed from its tokens file)");
  }
  Principal p;
  p.name = match->name;
  p.role = match->role;
  p.label_key = match->label_key;
  p.label_value = match->label_value;
  p.token_hash = presented;
  return p;
}

absl::Status Authorizer::StillValid(const Principal& principal) const {
  std::shared_ptr<const std::vector<TokenEntry>> tokens;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (!enabled_) return absl::OkStatus();
    tokens = tokens_;
  }
  bool same = false;
  for (const TokenEntry& e : *tokens) {
    const bool match = CRYPTO_memcmp(principal.token_hash.data(), e.hash.data(),
                                     e.hash.size()) == 0;
    if (match) {
      same = e.name == principal.name && e.role == principal.role &&
             e.label_key == principal.label_key &&
             e.label_value == principal.label_value;
    }
  }
  if (same) return absl::OkStatus();
  return absl::UnauthenticatedError(
      "authorization: the token was removed or changed when the tokens file "
      "was reloaded; authenticate again");
}

absl::Status Authorizer::Permit(const Principal& principal,
                                absl::string_view method) {
  const Role needed = RequiredRole(method);
  if (static_cast<int>(principal.role) >= static_cast<int>(needed)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat(method, ": needs the ", RoleName(needed), " role; token ",
                   principal.name, " has ", RoleName(principal.role)));
}

bool IsLoopbackListen(absl::string_view address) {
  if (absl::StartsWith(address, "unix:") ||
      absl::StartsWith(address, "unix-abstract:")) {
    return true;
  }
  for (absl::string_view scheme : {"dns:///", "ipv4:", "ipv6:"}) {
    if (absl::ConsumePrefix(&address, scheme)) break;
  }
  absl::string_view host;
  if (absl::StartsWith(address, "[")) {
    const size_t end = address.find(']');
    if (end == absl::string_view::npos) return false;
    host = address.substr(1, end - 1);
  } else {
    const size_t colon = address.rfind(':');
    host =
        colon == absl::string_view::npos ? address : address.substr(0, colon);
  }
  if (absl::EqualsIgnoreCase(host, "localhost") || host == "::1") return true;
  if (!absl::StartsWith(host, "127.")) return false;
  // 127.a.b.c with digits only.
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return dots == 3;
}

bool InScope(const Principal& principal,
             const google::protobuf::Map<std::string, std::string>& labels) {
  if (!principal.scoped()) return true;
  auto it = labels.find(principal.label_key);
  return it != labels.end() && it->second == principal.label_value;
}

std::string ScopedFilter(const Principal& principal, absl::string_view filter) {
  if (!principal.scoped()) return std::string(filter);
  std::string term = absl::StrCat("labels.", principal.label_key, " = \"",
                                  principal.label_value, "\"");
  if (absl::StripAsciiWhitespace(filter).empty()) return term;
  return absl::StrCat(filter, " AND ", term);
}

absl::Status CheckLabelsInScope(
    const Principal& principal, absl::string_view field,
    const google::protobuf::Map<std::string, std::string>& labels) {
  if (InScope(principal, labels)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(field, ": token ", principal.name,
                   " manages only schedules labelled ", principal.label_key,
                   "=", principal.label_value, ", so the labels must keep ",
                   principal.label_key, "=", principal.label_value));
}

}  // namespace anneal
