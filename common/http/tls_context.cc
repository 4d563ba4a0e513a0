#include "common/http/tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/http/http_server.h"
#include "common/status_macros.h"
#include "common/tls/openssl_errors.h"

namespace kelpie::http {

using tls::OpenSslErrors;

namespace {

int SelectHttp11(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                 unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = "\x08http/1.1";
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof(kHttp11) - 1, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  // Clients that only offer h2 still get HTTP/1.1 (no ALPN agreement).
  return SSL_TLSEXT_ERR_NOACK;
}

absl::Status LoadPemIntoStore(SSL_CTX* ctx, const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                &BIO_free);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, cert);
    X509_free(cert);
    ++added;
  }
  ERR_clear_error();  // the loop ends on an expected "no start line"
  if (added == 0) return absl::InvalidArgumentError("CA data holds no PEM certificate");
  return absl::OkStatus();
}

}  // namespace

absl::Status ConfigureServerTls(SSL_CTX* ctx, const TlsServerFiles& files) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(ctx, files.certificate_file.c_str()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot load serving certificate ", files.certificate_file, ": ", OpenSslErrors()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, files.private_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load serving key ",
                                                   files.private_key_file, ": ", OpenSslErrors()));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("serving key ", files.private_key_file,
                                                   " does not match certificate ",
                                                   files.certificate_file));
  }
  if (!files.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, files.client_ca_file.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot load client CA ", files.client_ca_file, ": ", OpenSslErrors()));
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.client_ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(ctx, names);
    // Ask for a certificate but do not require one: bearer tokens and
    // anonymous health checks come without. A presented certificate that
    // does not verify fails the handshake.
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  SSL_CTX_set_alpn_select_cb(ctx, SelectHttp11, nullptr);
  return absl::OkStatus();
}

absl::Status ConfigureClientTls(SSL_CTX* ctx, const TlsClientConfig& config) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (!config.ca_pem.empty()) {
    KELPIE_RETURN_IF_ERROR(LoadPemIntoStore(ctx, config.ca_pem));
  } else if (!config.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot load CA ", config.ca_file, ": ", OpenSslErrors()));
    }
  } else {
    SSL_CTX_set_default_verify_paths(ctx);
  }
  SSL_CTX_set_verify(ctx, config.skip_server_verification ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nullptr);

  if (!config.certificate_pem.empty() || !config.certificate_file.empty()) {
    if (!config.certificate_pem.empty()) {
      std::unique_ptr<BIO, decltype(&BIO_free)> bio(
          BIO_new_mem_buf(config.certificate_pem.data(), static_cast<int>(config.certificate_pem.size())),
          &BIO_free);
      std::unique_ptr<X509, decltype(&X509_free)> cert(
          PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
      if (!cert || SSL_CTX_use_certificate(ctx, cert.get()) != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid client certificate data: ", OpenSslErrors()));
      }
    } else if (SSL_CTX_use_certificate_chain_file(ctx, config.certificate_file.c_str()) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot load client certificate ", config.certificate_file, ": ", OpenSslErrors()));
    }
    if (!config.private_key_pem.empty()) {
      std::unique_ptr<BIO, decltype(&BIO_free)> bio(
          BIO_new_mem_buf(config.private_key_pem.data(), static_cast<int>(config.private_key_pem.size())),
          &BIO_free);
      std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
          PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
      if (!key || SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid client key data: ", OpenSslErrors()));
      }
    } else if (SSL_CTX_use_PrivateKey_file(ctx, config.private_key_file.c_str(),
                                           SSL_FILETYPE_PEM) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot load client key ", config.private_key_file, ": ", OpenSslErrors()));
    }
  }
  static const unsigned char kAlpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn) - 1);
  return absl::OkStatus();
}

PeerIdentity PeerIdentityFromSsl(SSL* ssl) {
  PeerIdentity id;
  std::unique_ptr<X509, decltype(&X509_free)> cert(SSL_get1_peer_certificate(ssl), &X509_free);
  if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) return id;
  id.has_client_certificate = true;
  X509_NAME* subject = X509_get_subject_name(cert.get());
  for (int i = 0; i < X509_NAME_entry_count(subject); ++i) {
    X509_NAME_ENTRY* entry = X509_NAME_get_entry(subject, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(entry);
    std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                      static_cast<size_t>(ASN1_STRING_length(data)));
    if (nid == NID_commonName) id.common_name = value;
    if (nid == NID_organizationName) id.organizations.push_back(value);
  }
  return id;
}

}  // namespace kelpie::http
