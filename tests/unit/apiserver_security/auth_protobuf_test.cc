// Decoding kubectl's protobuf bodies for the auth kinds.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "orchestrator/apiserver/auth_protobuf.h"

namespace kelpie::apiserver {
namespace {

// A tiny protobuf writer for building test bodies.
std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
  return out;
}
std::string Bytes(int field, const std::string& data) { return Varint((field << 3) | 2) + Varint(data.size()) + data; }
std::string Int(int field, uint64_t v) { return Varint(field << 3) + Varint(v); }

std::string Envelope(const std::string& api_version, const std::string& kind, const std::string& raw) {
  std::string type_meta = Bytes(1, api_version) + Bytes(2, kind);
  return std::string("k8s\0", 4) + Bytes(1, type_meta) + Bytes(2, raw) + Bytes(4, "application/vnd.kubernetes.protobuf");
}

TEST(AuthProtobuf, SelfSubjectAccessReview) {
  std::string attrs = Bytes(1, "default") + Bytes(2, "create") + Bytes(5, "pods") + Bytes(99 /*unknown*/, "x");
  std::string spec = Bytes(1, attrs);
  std::string raw = Bytes(1, "") + Bytes(2, spec);
  auto j = DecodeAuthProtobuf(Envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview", raw),
                              "SelfSubjectAccessReview");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["kind"], "SelfSubjectAccessReview");
  EXPECT_EQ((*j)["apiVersion"], "authorization.k8s.io/v1");
  EXPECT_EQ((*j)["spec"]["resourceAttributes"]["namespace"], "default");
  EXPECT_EQ((*j)["spec"]["resourceAttributes"]["verb"], "create");
  EXPECT_EQ((*j)["spec"]["resourceAttributes"]["resource"], "pods");
}

TEST(AuthProtobuf, TokenRequestAndSubjectAccessReviewExtra) {
  std::string bound = Bytes(1, "Pod") + Bytes(3, "web-1");
  std::string spec = Bytes(1, "aud-a") + Bytes(1, "aud-b") + Bytes(3, bound) + Int(4, 7200);
  auto tr = DecodeAuthProtobuf(Envelope("authentication.k8s.io/v1", "TokenRequest", Bytes(2, spec)), "TokenRequest");
  ASSERT_TRUE(tr.ok()) << tr.status();
  EXPECT_EQ((*tr)["spec"]["audiences"], nlohmann::json({"aud-a", "aud-b"}));
  EXPECT_EQ((*tr)["spec"]["expirationSeconds"], 7200);
  EXPECT_EQ((*tr)["spec"]["boundObjectRef"]["name"], "web-1");

  std::string extra_value = Bytes(1, "v1") + Bytes(1, "v2");
  std::string entry = Bytes(1, "scopes") + Bytes(2, extra_value);
  std::string sar_spec = Bytes(2, Bytes(1, "/metrics") + Bytes(2, "get")) + Bytes(3, "jane") + Bytes(4, "dev") +
                         Bytes(5, entry);
  auto sar = DecodeAuthProtobuf(Envelope("authorization.k8s.io/v1", "SubjectAccessReview", Bytes(2, sar_spec)),
                                "SubjectAccessReview");
  ASSERT_TRUE(sar.ok()) << sar.status();
  EXPECT_EQ((*sar)["spec"]["user"], "jane");
  EXPECT_EQ((*sar)["spec"]["groups"], nlohmann::json({"dev"}));
  EXPECT_EQ((*sar)["spec"]["extra"]["scopes"], nlohmann::json({"v1", "v2"}));
  EXPECT_EQ((*sar)["spec"]["nonResourceAttributes"]["path"], "/metrics");
}

TEST(AuthProtobuf, MalformedInputIsAnErrorNeverACrash) {
  EXPECT_FALSE(DecodeAuthProtobuf("{}", "TokenRequest").ok());  // no magic
  EXPECT_FALSE(DecodeAuthProtobuf(std::string("k8s\0", 4) + "\x0a\xff", "TokenRequest").ok());  // truncated
  std::string raw = Bytes(2, Int(1, 5));  // a varint where a string belongs
  EXPECT_FALSE(DecodeAuthProtobuf(Envelope("v1", "TokenRequest", raw), "TokenRequest").ok());
  EXPECT_FALSE(DecodeAuthProtobuf(Envelope("v1", "Pod", ""), "TokenRequest").ok());  // another kind
  EXPECT_TRUE(DecodeAuthProtobuf(std::string("k8s\0", 4), "TokenRequest").ok());  // empty envelope: empty object
  // Every prefix of a valid body fails cleanly or decodes.
  std::string body = Envelope("authorization.k8s.io/v1", "SelfSubjectRulesReview", Bytes(2, Bytes(1, "default")));
  for (size_t n = 0; n < body.size(); ++n) (void)DecodeAuthProtobuf(body.substr(0, n), "SelfSubjectRulesReview");
  auto ok = DecodeAuthProtobuf(body, "SelfSubjectRulesReview");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)["spec"]["namespace"], "default");
}

}  // namespace
}  // namespace kelpie::apiserver
