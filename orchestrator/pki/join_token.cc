#include "orchestrator/pki/join_token.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/tls/certificates.h"

namespace kelpie::pki {
namespace {

constexpr char kPrefix[] = "K10";

absl::Status ValidateSecret(const std::string& secret) {
  if (secret.size() < 16) return absl::InvalidArgumentError("the token's secret is shorter than 16 characters");
  for (char c : secret) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError("the token's secret may only hold printable characters without spaces");
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string JoinToken::ToString() const { return absl::StrCat(kPrefix, ca_hash, "::", secret); }

absl::StatusOr<JoinToken> ParseJoinToken(const std::string& raw) {
  std::string text(absl::StripAsciiWhitespace(raw));
  if (!absl::StartsWith(text, kPrefix)) {
    return absl::InvalidArgumentError("a join token starts with K10 (K10<CA hash>::<secret>, as the server prints it)");
  }
  size_t sep = text.find("::");
  if (sep == std::string::npos) return absl::InvalidArgumentError("a join token has the form K10<CA hash>::<secret>");
  JoinToken t;
  t.ca_hash = absl::AsciiStrToLower(text.substr(3, sep - 3));
  t.secret = text.substr(sep + 2);
  if (t.ca_hash.size() != 64 || t.ca_hash.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return absl::InvalidArgumentError("the join token's CA hash is not 64 hex digits");
  }
  KELPIE_RETURN_IF_ERROR(ValidateSecret(t.secret));
  return t;
}

absl::StatusOr<JoinToken> EnsureJoinToken(const std::string& path, const std::string& ca_certificate_pem,
                                          const std::string& fixed_secret) {
  JoinToken t;
  KELPIE_ASSIGN_OR_RETURN(t.ca_hash, tls::PublicKeySha256(ca_certificate_pem));
  if (!fixed_secret.empty()) {
    if (absl::StartsWith(fixed_secret, kPrefix) && fixed_secret.find("::") != std::string::npos) {
      KELPIE_ASSIGN_OR_RETURN(JoinToken given, ParseJoinToken(fixed_secret));
      if (given.ca_hash != t.ca_hash) {
        return absl::InvalidArgumentError("--token carries a CA hash that is not this cluster's CA");
      }
      t.secret = given.secret;
    } else {
      KELPIE_RETURN_IF_ERROR(ValidateSecret(fixed_secret));
      t.secret = fixed_secret;
    }
  } else if (auto existing = ReadFileToString(path); existing.ok()) {
    auto parsed = ParseJoinToken(*existing);
    if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", parsed.status().message()));
    t.secret = parsed->secret;
  } else {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof(bytes)) != 1) return absl::InternalError("no randomness for the join token");
    t.secret = absl::StrCat("node:", absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(bytes), 16)));
  }
  KELPIE_RETURN_IF_ERROR(WriteFileAtomically(path, t.ToString() + "\n", 0600));
  return t;
}

bool SecretsEqual(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace kelpie::pki
