#include "orchestrator/pki/cluster_pki.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>

#include "common/files.h"
#include "common/net/ip_cidr.h"
#include "orchestrator/client/kubeconfig.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

TEST(CertificatesTest, IssuedCertificateCarriesSubjectAndSans) {
  auto ca = tls::CreateCertificateAuthority("ca", std::chrono::hours(48));
  ASSERT_TRUE(ca.ok());
  tls::CertificateRequest r;
  r.common_name = "node-1";
  r.organizations = {"system:nodes"};
  r.dns_names = {"node-1.example"};
  r.ip_addresses = {"192.0.2.7", "2001:db8::1"};
  r.client_auth = true;
  auto leaf = tls::IssueCertificate(*ca, r);
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  auto info = tls::ParseCertificate(leaf->certificate_pem);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->common_name, "node-1");
  EXPECT_EQ(info->organizations, std::vector<std::string>{"system:nodes"});
  EXPECT_EQ(info->issuer_common_name, "ca");
  EXPECT_TRUE(Has(info->dns_names, "node-1.example"));
  EXPECT_TRUE(Has(info->ip_addresses, "192.0.2.7"));
  EXPECT_TRUE(Has(info->ip_addresses, "2001:db8::1"));
  EXPECT_TRUE(tls::IsSignedBy(leaf->certificate_pem, ca->certificate_pem));
  auto other = tls::CreateCertificateAuthority("other", std::chrono::hours(48));
  EXPECT_FALSE(tls::IsSignedBy(leaf->certificate_pem, other->certificate_pem));
  auto hash = tls::PublicKeySha256(ca->certificate_pem);
  ASSERT_TRUE(hash.ok());
  EXPECT_EQ(hash->size(), 64u);
}

TEST(ClusterPkiTest, FirstStartCreatesThenRestartReuses) {
  testing::TempDir dir;
  pki::ClusterPkiOptions o;
  o.directory = dir.File("pki");
  o.first_service_ip = "10.43.0.1";
  auto first = pki::EnsureClusterPki(o);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->created_ca);
  struct stat st;
  ASSERT_EQ(::stat(first->ca_key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto serving = tls::ParseCertificate(*ReadFileToString(first->serving_certificate_file));
  ASSERT_TRUE(serving.ok());
  for (const char* dns : {"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                          "kubernetes.default.svc.cluster.local"}) {
    EXPECT_TRUE(Has(serving->dns_names, dns)) << dns;
  }
  EXPECT_TRUE(Has(serving->ip_addresses, "127.0.0.1"));
  EXPECT_TRUE(Has(serving->ip_addresses, "10.43.0.1"));
  auto admin = tls::ParseCertificate(first->admin.certificate_pem);
  EXPECT_EQ(admin->organizations, std::vector<std::string>{"system:masters"});

  auto second = pki::EnsureClusterPki(o);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->created_ca);
  EXPECT_FALSE(second->reissued_serving);
  EXPECT_EQ(second->ca.certificate_pem, first->ca.certificate_pem);
  EXPECT_EQ(second->admin.certificate_pem, first->admin.certificate_pem);

  // A new SAN reissues the serving certificate under the same CA.
  o.extra_sans = {"kelpie.example", "192.0.2.44"};
  auto third = pki::EnsureClusterPki(o);
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(third->reissued_serving);
  EXPECT_EQ(third->ca.certificate_pem, first->ca.certificate_pem);
  auto reissued = tls::ParseCertificate(*ReadFileToString(third->serving_certificate_file));
  EXPECT_TRUE(Has(reissued->dns_names, "kelpie.example"));
  EXPECT_TRUE(Has(reissued->ip_addresses, "192.0.2.44"));
}

TEST(ClusterPkiTest, HalfACaIsAClearError) {
  testing::TempDir dir;
  pki::ClusterPkiOptions o;
  o.directory = dir.File("pki");
  ASSERT_TRUE(pki::EnsureClusterPki(o).ok());
  ASSERT_EQ(::unlink((o.directory + "/ca.key").c_str()), 0);
  auto r = pki::EnsureClusterPki(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("ca.key"), std::string::npos) << r.status();
}

TEST(KubeconfigTest, WriteThenLoadRoundTrips) {
  testing::TempDir dir;
  client::KubeconfigContents c;
  c.server = "https://127.0.0.1:6443";
  c.ca_certificate_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  c.client_certificate_pem = "cert";
  c.client_key_pem = "key!";
  ASSERT_TRUE(client::WriteKubeconfig(dir.File("kc"), c, 0600).ok());
  auto loaded = client::LoadKubeconfig(dir.File("kc"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->server, c.server);
  EXPECT_EQ(loaded->ca_certificate_pem, c.ca_certificate_pem);
  EXPECT_EQ(loaded->client_certificate_pem, "cert");
  EXPECT_EQ(loaded->client_key_pem, "key!");
}

TEST(KubeconfigTest, MissingContextNamesFile) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteFileAtomically(dir.File("kc"), "apiVersion: v1\nkind: Config\n", 0600).ok());
  auto loaded = client::LoadKubeconfig(dir.File("kc"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("no current-context"), std::string::npos);
}

TEST(Ipv4CidrTest, ParsesAndIndexes) {
  auto c = net::Ipv4Cidr::Parse("10.43.0.0/16");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c->AddressAt(1), "10.43.0.1");
  EXPECT_EQ(*c->AddressAt(10), "10.43.0.10");
  EXPECT_EQ(c->size(), 65536u);
  EXPECT_FALSE(c->AddressAt(65536).ok());
  auto bad = net::Ipv4Cidr::Parse("10.43.0.1/16");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("did you mean 10.43.0.0/16"), std::string::npos);
  EXPECT_FALSE(net::Ipv4Cidr::Parse("10.43.0.0").ok());
  EXPECT_FALSE(net::Ipv4Cidr::Parse("300.1.1.0/24").ok());
}

}  // namespace
}  // namespace kelpie
