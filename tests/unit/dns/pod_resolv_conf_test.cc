// The pod resolv.conf for dnsPolicy ClusterFirst, as the kubelet writes it.
#include "control/dns/pod_resolv_conf.h"

#include <gtest/gtest.h>

namespace kelpie::dns {
namespace {

TEST(PodResolvConfTest, ClusterFirstLayout) {
  EXPECT_EQ(BuildPodResolvConf("shop"),
            "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
            "nameserver 10.43.0.10\n"
            "options ndots:5\n");
}

TEST(PodResolvConfTest, CustomDomainServersAndHostSearch) {
  PodResolvConfOptions o;
  o.nameservers = {"10.96.0.10", "fd00::a"};
  o.cluster_domain = "corp.internal";
  o.host_search = {"example.org", "svc.corp.internal"};
  EXPECT_EQ(BuildPodResolvConf("default", o),
            "search default.svc.corp.internal svc.corp.internal corp.internal example.org\n"
            "nameserver 10.96.0.10\nnameserver fd00::a\n"
            "options ndots:5\n");
}

}  // namespace
}  // namespace kelpie::dns
