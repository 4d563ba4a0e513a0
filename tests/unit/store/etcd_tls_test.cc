// The etcd backend over TLS with client certificates, against an etcd that
// requires them.
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/subprocess.h"
#include "orchestrator/store/etcd_store.h"
#include "tests/testing/test_env.h"
#include "tests/unit/store/etcd_process.h"

namespace kelpie::store {
namespace {

// A throwaway CA, a server certificate for 127.0.0.1 and a client
// certificate, made with the openssl command.
class EtcdTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(FindExecutable("openssl").has_value()) << "openssl is not installed";
    ASSERT_TRUE(WriteFileAtomically(dir_.File("server.ext"),
                                    "subjectAltName=IP:127.0.0.1\n"
                                    "extendedKeyUsage=serverAuth,clientAuth\n",
                                    0600)
                    .ok());
    ASSERT_TRUE(
        WriteFileAtomically(dir_.File("client.ext"), "extendedKeyUsage=clientAuth\n", 0600).ok());
    Run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", dir_.File("ca.key"), "-out", dir_.File("ca.crt"), "-days", "1",
         "-subj", "/CN=kelpie-test-ca"});
    for (const std::string name : {"server", "client"}) {
      Run({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-keyout", dir_.File(name + ".key"), "-out", dir_.File(name + ".csr"),
           "-subj", "/CN=" + name});
      Run({"openssl", "x509", "-req", "-in", dir_.File(name + ".csr"), "-CA", dir_.File("ca.crt"),
           "-CAkey", dir_.File("ca.key"), "-CAcreateserial", "-out", dir_.File(name + ".crt"),
           "-days", "1", "-extfile", dir_.File(name + ".ext")});
    }
    tls_.ca_file = dir_.File("ca.crt");
    tls_.cert_file = dir_.File("server.crt");
    tls_.key_file = dir_.File("server.key");
    tls_.client_cert_file = dir_.File("client.crt");
    tls_.client_key_file = dir_.File("client.key");
    auto etcd = testing::EtcdProcess::Start(dir_.File("etcd"), &tls_);
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = std::move(*etcd);
  }

  void Run(const std::vector<std::string>& argv) {
    auto result = RunSubprocess(argv);
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_TRUE(result->Succeeded()) << argv[1] << ": " << result->stderr_text;
  }

  kelpie::testing::TempDir dir_;
  testing::EtcdProcess::Tls tls_;
  std::unique_ptr<testing::EtcdProcess> etcd_;
};

TEST_F(EtcdTlsTest, WorksWithTheClusterCaAndAClientCertificate) {
  EtcdStoreOptions options;
  options.endpoints = {etcd_->endpoint()};
  options.ca_file = tls_.ca_file;
  options.cert_file = tls_.client_cert_file;
  options.key_file = tls_.client_key_file;
  auto store = EtcdStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Put("/tls/k", "v").ok());
  EXPECT_EQ((*store)->Get("/tls/k")->value_view(), "v");
}

TEST_F(EtcdTlsTest, RefusesAServerItCannotVerifyAndFailsWithoutAClientCertificate) {
  EtcdStoreOptions no_client_cert;
  no_client_cert.endpoints = {etcd_->endpoint()};
  no_client_cert.ca_file = tls_.ca_file;
  no_client_cert.request_timeout = std::chrono::seconds(3);
  EXPECT_FALSE(EtcdStore::Open(no_client_cert).ok());

  EtcdStoreOptions wrong_ca = no_client_cert;
  wrong_ca.ca_file = tls_.client_cert_file;  // not the CA that signed the server
  wrong_ca.cert_file = tls_.client_cert_file;
  wrong_ca.key_file = tls_.client_key_file;
  EXPECT_FALSE(EtcdStore::Open(wrong_ca).ok());

  EtcdStoreOptions half = no_client_cert;
  half.cert_file = tls_.client_cert_file;
  auto store = EtcdStore::Open(half);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument) << store.status();
}

}  // namespace
}  // namespace kelpie::store
