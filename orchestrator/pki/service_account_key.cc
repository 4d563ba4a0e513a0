#include "orchestrator/pki/service_account_key.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/tls/openssl_errors.h"

namespace kelpie::pki {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<std::string> PublicPem(EVP_PKEY* key) {
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_PUBKEY(out.get(), key) != 1) {
    return absl::InternalError(absl::StrCat("writing a public key: ", tls::OpenSslErrors()));
  }
  return BioText(out.get());
}

}  // namespace

absl::StatusOr<ServiceAccountKeyPem> CreateServiceAccountKey() {
  PkeyPtr key(EVP_RSA_gen(2048));
  if (!key) return absl::InternalError(absl::StrCat("generating an RSA key: ", tls::OpenSslErrors()));
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_PrivateKey(out.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return absl::InternalError(absl::StrCat("writing an RSA key: ", tls::OpenSslErrors()));
  }
  ServiceAccountKeyPem pem;
  pem.private_key_pem = BioText(out.get());
  KELPIE_ASSIGN_OR_RETURN(pem.public_key_pem, PublicPem(key.get()));
  return pem;
}

absl::StatusOr<std::string> PublicKeyPem(const std::string& private_key_pem) {
  BioPtr in(BIO_new_mem_buf(private_key_pem.data(), static_cast<int>(private_key_pem.size())));
  PkeyPtr key(in ? PEM_read_bio_PrivateKey(in.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return absl::InvalidArgumentError(absl::StrCat("not a PEM private key: ", tls::OpenSslErrors()));
  if (EVP_PKEY_base_id(key.get()) != EVP_PKEY_RSA) {
    return absl::InvalidArgumentError("the service-account signing key must be an RSA key");
  }
  return PublicPem(key.get());
}

absl::StatusOr<ServiceAccountKeyPem> EnsureServiceAccountKey(const std::string& directory, bool* created) {
  *created = false;
  const std::string key_file = directory + "/sa.key";
  const std::string pub_file = directory + "/sa.pub";
  bool have_key = PathExists(key_file);
  bool have_pub = PathExists(pub_file);
  if (!have_key && have_pub) {
    return absl::FailedPreconditionError(absl::StrCat(
        "found ", pub_file, " but not ", key_file,
        ": restore the key, or remove sa.pub to create a new pair (every service-account token "
        "issued so far then stops working)"));
  }
  ServiceAccountKeyPem pem;
  if (!have_key) {
    KELPIE_ASSIGN_OR_RETURN(pem, CreateServiceAccountKey());
    KELPIE_RETURN_IF_ERROR(WriteFileAtomically(key_file, pem.private_key_pem, 0600));
    KELPIE_RETURN_IF_ERROR(WriteFileAtomically(pub_file, pem.public_key_pem, 0644));
    *created = true;
    return pem;
  }
  KELPIE_ASSIGN_OR_RETURN(pem.private_key_pem, ReadFileToString(key_file));
  auto pub = PublicKeyPem(pem.private_key_pem);
  if (!pub.ok()) {
    return absl::DataLossError(absl::StrCat("service-account key ", key_file, ": ", pub.status().message()));
  }
  pem.public_key_pem = *pub;
  std::string on_disk;
  if (have_pub) on_disk = ReadFileToString(pub_file).value_or("");
  // sa.pub is derived from sa.key: keep them in step.
  if (on_disk != pem.public_key_pem) {
    KELPIE_RETURN_IF_ERROR(WriteFileAtomically(pub_file, pem.public_key_pem, 0644));
  }
  return pem;
}

}  // namespace kelpie::pki
