// Content digests ("sha256:<64 hex>") and an incremental SHA-256 hasher.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kelpie::image {

// Incremental SHA-256 over OpenSSL's EVP interface.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(const void* data, size_t size);
  // "sha256:<hex>" of everything fed so far; the hasher cannot be reused.
  std::string FinishDigest();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

// "sha256:<hex>" of `data`.
std::string Sha256Digest(absl::string_view data);

// Accepts only "sha256:" followed by 64 lowercase hex digits: digests become
// file names, so anything else (including "../") is refused.
absl::Status ValidateDigest(absl::string_view digest);

// The hex part of a validated digest.
std::string DigestHex(absl::string_view digest);

}  // namespace kelpie::image
