#include "orchestrator/runtime/image/digest.h"

#include <openssl/evp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"

namespace kelpie::image {

struct Sha256Hasher::Context {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256Hasher::Sha256Hasher() : context_(std::make_unique<Context>()) {
  context_->ctx = EVP_MD_CTX_new();
  // Allocation failure of a few bytes is not recoverable in any useful way.
  if (context_->ctx == nullptr || EVP_DigestInit_ex(context_->ctx, EVP_sha256(), nullptr) != 1) {
    std::abort();
  }
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(context_->ctx); }

void Sha256Hasher::Update(const void* data, size_t size) {
  if (size > 0) EVP_DigestUpdate(context_->ctx, data, size);
}

std::string Sha256Hasher::FinishDigest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(context_->ctx, md, &len);
  static const char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

std::string Sha256Digest(absl::string_view data) {
  Sha256Hasher hasher;
  hasher.Update(data.data(), data.size());
  return hasher.FinishDigest();
}

absl::Status ValidateDigest(absl::string_view digest) {
  constexpr absl::string_view kPrefix = "sha256:";
  bool ok = absl::StartsWith(digest, kPrefix) && digest.size() == kPrefix.size() + 64;
  for (size_t i = kPrefix.size(); ok && i < digest.size(); ++i) {
    char c = digest[i];
    ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid digest \"", digest, "\": want sha256:<64 lowercase hex digits>"));
  }
  return absl::OkStatus();
}

std::string DigestHex(absl::string_view digest) {
  auto pos = digest.find(':');
  return std::string(pos == absl::string_view::npos ? digest : digest.substr(pos + 1));
}

}  // namespace kelpie::image
