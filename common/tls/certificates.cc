#include "common/tls/certificates.h"

#include <arpa/inet.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/tls/openssl_errors.h"

namespace kelpie::tls {
namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

absl::Status Fail(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", OpenSslErrors()));
}

absl::StatusOr<PkeyPtr> NewKey() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return Fail("cannot generate an EC key");
  return key;
}

std::string ToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  BUF_MEM* mem;
  BIO_get_mem_ptr(bio.get(), &mem);
  return std::string(mem->data, mem->length);
}

std::string ToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  BUF_MEM* mem;
  BIO_get_mem_ptr(bio.get(), &mem);
  return std::string(mem->data, mem->length);
}

absl::StatusOr<X509Ptr> CertFromPem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return absl::InvalidArgumentError(absl::StrCat("invalid PEM certificate: ", OpenSslErrors()));
  return cert;
}

absl::StatusOr<PkeyPtr> KeyFromPem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return absl::InvalidArgumentError(absl::StrCat("invalid PEM private key: ", OpenSslErrors()));
  return key;
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return Fail(absl::StrCat("cannot build extension ", OBJ_nid2sn(nid)));
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return absl::OkStatus();
}

absl::Status SetCommon(X509* cert, const std::string& cn, const std::vector<std::string>& orgs,
                       std::chrono::hours validity) {
  X509_set_version(cert, 2);  // v3
  // 128-bit random serial: unique without keeping a counter.
  unsigned char serial_bytes[16];
  RAND_bytes(serial_bytes, sizeof(serial_bytes));
  serial_bytes[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
  // Backdate by an hour to tolerate clock skew between nodes.
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert),
                  static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(validity).count()));
  X509_NAME* name = X509_get_subject_name(cert);
  for (const auto& o : orgs) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(o.c_str()), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<KeyPairPem> CreateCertificateAuthority(const std::string& common_name,
                                                      std::chrono::hours validity) {
  KELPIE_ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  X509Ptr cert(X509_new());
  KELPIE_RETURN_IF_ERROR(SetCommon(cert.get(), common_name, {}, validity));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  X509_set_pubkey(cert.get(), key.get());
  KELPIE_RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE"));
  KELPIE_RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign"));
  KELPIE_RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return Fail("cannot sign CA certificate");
  return KeyPairPem{ToPem(cert.get()), ToPem(key.get())};
}

namespace {

// Signs a certificate for `request` over `key` (only its public half is used).
absl::StatusOr<std::string> SignCertificate(const KeyPairPem& ca, const CertificateRequest& request, EVP_PKEY* key) {
  KELPIE_ASSIGN_OR_RETURN(X509Ptr ca_cert, CertFromPem(ca.certificate_pem));
  KELPIE_ASSIGN_OR_RETURN(PkeyPtr ca_key, KeyFromPem(ca.private_key_pem));
  X509Ptr cert(X509_new());
  KELPIE_RETURN_IF_ERROR(SetCommon(cert.get(), request.common_name, request.organizations, request.validity));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  X509_set_pubkey(cert.get(), key);
  KELPIE_RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  KELPIE_RETURN_IF_ERROR(
      AddExtension(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment"));
  std::string eku;
  if (request.server_auth) eku = "serverAuth";
  if (request.client_auth) eku += eku.empty() ? "clientAuth" : ",clientAuth";
  if (!eku.empty()) {
    KELPIE_RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_ext_key_usage, eku));
  }
  KELPIE_RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always"));
  std::string sans;
  for (const auto& d : request.dns_names) absl::StrAppend(&sans, sans.empty() ? "" : ",", "DNS:", d);
  for (const auto& ip : request.ip_addresses) absl::StrAppend(&sans, sans.empty() ? "" : ",", "IP:", ip);
  if (!sans.empty()) {
    KELPIE_RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_subject_alt_name, sans));
  }
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) == 0) return Fail("cannot sign certificate");
  return ToPem(cert.get());
}

}  // namespace

absl::StatusOr<KeyPairPem> IssueCertificate(const KeyPairPem& ca, const CertificateRequest& request) {
  KELPIE_ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  KELPIE_ASSIGN_OR_RETURN(std::string cert, SignCertificate(ca, request, key.get()));
  return KeyPairPem{std::move(cert), ToPem(key.get())};
}

absl::StatusOr<std::string> GeneratePrivateKeyPem() {
  KELPIE_ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  return ToPem(key.get());
}

absl::StatusOr<std::string> PublicKeyPemOf(const std::string& private_key_pem) {
  KELPIE_ASSIGN_OR_RETURN(PkeyPtr key, KeyFromPem(private_key_pem));
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PUBKEY(bio.get(), key.get()) != 1) return Fail("cannot write public key");
  BUF_MEM* mem;
  BIO_get_mem_ptr(bio.get(), &mem);
  return std::string(mem->data, mem->length);
}

absl::StatusOr<std::string> IssueCertificateForPublicKey(const KeyPairPem& ca, const CertificateRequest& request,
                                                         const std::string& public_key_pem) {
  BioPtr bio(BIO_new_mem_buf(public_key_pem.data(), static_cast<int>(public_key_pem.size())));
  PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return absl::InvalidArgumentError(absl::StrCat("invalid PEM public key: ", OpenSslErrors()));
  return SignCertificate(ca, request, key.get());
}

absl::StatusOr<CertificateInfo> ParseCertificate(const std::string& certificate_pem) {
  KELPIE_ASSIGN_OR_RETURN(X509Ptr cert, CertFromPem(certificate_pem));
  CertificateInfo info;
  auto read_name = [](X509_NAME* name, int nid) {
    std::vector<std::string> out;
    for (int i = X509_NAME_get_index_by_NID(name, nid, -1); i >= 0;
         i = X509_NAME_get_index_by_NID(name, nid, i)) {
      ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                       static_cast<size_t>(ASN1_STRING_length(data)));
    }
    return out;
  };
  auto cns = read_name(X509_get_subject_name(cert.get()), NID_commonName);
  if (!cns.empty()) info.common_name = cns.front();
  info.organizations = read_name(X509_get_subject_name(cert.get()), NID_organizationName);
  auto issuer = read_name(X509_get_issuer_name(cert.get()), NID_commonName);
  if (!issuer.empty()) info.issuer_common_name = issuer.front();

  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
      if (gn->type == GEN_DNS) {
        info.dns_names.emplace_back(
            reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName)),
            static_cast<size_t>(ASN1_STRING_length(gn->d.dNSName)));
      } else if (gn->type == GEN_IPADD) {
        const unsigned char* bytes = ASN1_STRING_get0_data(gn->d.iPAddress);
        int len = ASN1_STRING_length(gn->d.iPAddress);
        char text[INET6_ADDRSTRLEN] = {0};
        if (len == 4) inet_ntop(AF_INET, bytes, text, sizeof(text));
        if (len == 16) inet_ntop(AF_INET6, bytes, text, sizeof(text));
        if (text[0] != 0) info.ip_addresses.emplace_back(text);
      }
    }
    GENERAL_NAMES_free(names);
  }
  struct tm tm {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) == 1) {
    info.not_after = std::chrono::system_clock::from_time_t(timegm(&tm));
  }
  return info;
}

bool IsSignedBy(const std::string& certificate_pem, const std::string& ca_certificate_pem) {
  auto cert = CertFromPem(certificate_pem);
  auto ca = CertFromPem(ca_certificate_pem);
  if (!cert.ok() || !ca.ok()) return false;
  EVP_PKEY* ca_pub = X509_get0_pubkey(ca->get());
  bool ok = ca_pub != nullptr && X509_verify(cert->get(), ca_pub) == 1;
  ERR_clear_error();
  return ok;
}

absl::StatusOr<std::string> PublicKeySha256(const std::string& certificate_pem) {
  KELPIE_ASSIGN_OR_RETURN(X509Ptr cert, CertFromPem(certificate_pem));
  unsigned char* der = nullptr;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.get()), &der);
  if (len <= 0) return Fail("cannot encode public key");
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(der, static_cast<size_t>(len), digest);
  OPENSSL_free(der);
  std::string hex;
  for (unsigned char b : digest) absl::StrAppendFormat(&hex, "%02x", b);
  return hex;
}

}  // namespace kelpie::tls
