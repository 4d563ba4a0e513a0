#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "orchestrator/api/protobuf/protobuf_codec.h"
#include "orchestrator/api/protobuf/protobuf_wire.h"
#include "orchestrator/api/schema/schema.h"

namespace kelpie::api::protobuf {
namespace {

using nlohmann::json;

std::string Bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

TEST(ProtobufWireTest, VarintsAsProtobufWritesThem) {
  auto varint = [](uint64_t v) {
    ProtobufWriter w;
    w.Varint(v);
    return w.Release();
  };
  EXPECT_EQ(varint(0), Bytes({0x00}));
  EXPECT_EQ(varint(1), Bytes({0x01}));
  EXPECT_EQ(varint(127), Bytes({0x7f}));
  EXPECT_EQ(varint(300), Bytes({0xac, 0x02}));
  EXPECT_EQ(varint(UINT64_MAX), Bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));
  ProtobufWriter w;
  w.IntField(2, -1);  // negative ints are sign-extended to ten bytes
  EXPECT_EQ(w.data(), Bytes({0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));

  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{300}, uint64_t{1} << 35, UINT64_MAX}) {
    std::string bytes = varint(v);
    ProtobufReader r(bytes);
    auto back = r.Varint();
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, v);
    EXPECT_TRUE(r.done());
  }
}

TEST(ProtobufWireTest, LengthDelimitedFieldsAndTags) {
  ProtobufWriter w;
  w.BytesField(1, "abc");
  w.VarintField(3, 150);
  EXPECT_EQ(w.data(), Bytes({0x0a, 0x03, 'a', 'b', 'c', 0x18, 0x96, 0x01}));
  ProtobufReader r(w.data());
  auto tag = r.NextTag();
  ASSERT_TRUE(tag.ok());
  EXPECT_EQ(tag->field, 1);
  EXPECT_EQ(tag->wire, kLengthDelimited);
  EXPECT_EQ(*r.LengthDelimited(), "abc");
  tag = r.NextTag();
  EXPECT_EQ(tag->field, 3);
  EXPECT_EQ(tag->wire, kVarint);
  EXPECT_EQ(*r.Varint(), 150u);
  EXPECT_TRUE(r.done());
}

TEST(ProtobufWireTest, MalformedInputIsAnErrorNeverARead) {
  EXPECT_FALSE(ProtobufReader(Bytes({0x80})).Varint().ok());  // truncated
  EXPECT_FALSE(ProtobufReader(std::string(11, '\xff')).Varint().ok());  // longer than ten bytes
  EXPECT_FALSE(ProtobufReader(Bytes({0x05, 'a'})).LengthDelimited().ok());  // runs past the end
  EXPECT_FALSE(ProtobufReader(Bytes({0xff, 0xff, 0xff, 0xff, 0x0f, 0x00})).LengthDelimited().ok());
  EXPECT_FALSE(ProtobufReader(Bytes({0x00})).NextTag().ok());  // field 0
  EXPECT_FALSE(ProtobufReader(Bytes({0x01, 0x02})).Fixed64().ok());
  EXPECT_FALSE(ProtobufReader(Bytes({0x01})).Fixed32().ok());
  ProtobufReader groups(Bytes({0x0b}));
  auto tag = groups.NextTag();
  ASSERT_TRUE(tag.ok());
  EXPECT_FALSE(groups.Skip(tag->wire).ok());  // groups are refused
}

TEST(ProtobufWireTest, ZeroValuesAreRecognised) {
  EXPECT_TRUE(*ProtobufReader(Bytes({0x00})).SkipAndCheckZero(kVarint));
  EXPECT_FALSE(*ProtobufReader(Bytes({0x01})).SkipAndCheckZero(kVarint));
  EXPECT_TRUE(*ProtobufReader(Bytes({0x00})).SkipAndCheckZero(kLengthDelimited));
  // A message whose only field is an empty string.
  EXPECT_TRUE(*ProtobufReader(Bytes({0x02, 0x0a, 0x00})).SkipAndCheckZero(kLengthDelimited));
  EXPECT_FALSE(*ProtobufReader(Bytes({0x01, 'x'})).SkipAndCheckZero(kLengthDelimited));
}

TEST(ProtobufEnvelopeTest, WireFormatOfRuntimeUnknown) {
  std::string body = SerializeEnvelope({"v1", "Namespace", Bytes({0x0a, 0x00}), "", ""});
  // "k8s\0", then Unknown{typeMeta(1){apiVersion(1), kind(2)}, raw(2), contentEncoding(3), contentType(4)}.
  std::string expected = std::string("k8s\0", 4) + Bytes({0x0a, 0x0f, 0x0a, 0x02, 'v', '1', 0x12, 0x09}) +
                         "Namespace" + Bytes({0x12, 0x02, 0x0a, 0x00, 0x1a, 0x00, 0x22, 0x00});
  EXPECT_EQ(body, expected);
  auto parsed = ParseEnvelope(body);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->api_version, "v1");
  EXPECT_EQ(parsed->kind, "Namespace");
  EXPECT_EQ(parsed->raw, Bytes({0x0a, 0x00}));

  EXPECT_FALSE(ParseEnvelope("{\"kind\":\"Namespace\"}").ok());
  EXPECT_FALSE(ParseEnvelope(std::string("k8s", 3)).ok());
  EXPECT_FALSE(ParseEnvelope(std::string("k8s\0", 4) + Bytes({0x0a, 0x7f})).ok());  // truncated typeMeta
  EXPECT_FALSE(ParseEnvelope(std::string("k8s\0", 4) + Bytes({0x10, 0x01})).ok());  // typeMeta as a varint
}

// Objects of every modelled kind, written as kube-apiserver would store
// them (no zero values of optional fields).
std::vector<json> SampleObjects() {
  json meta = {{"name", "sample"},
               {"namespace", "default"},
               {"uid", "0b6a1c36-6f2e-4d8c-9d6e-2f1a1b2c3d4e"},
               {"resourceVersion", "42"},
               {"generation", 3},
               {"creationTimestamp", "2024-05-06T07:08:09Z"},
               {"labels", {{"app", "web"}, {"tier", ""}}},
               {"annotations", {{"note", "ünïcode ✓"}}},
               {"finalizers", {"example.com/hold"}},
               {"ownerReferences",
                {{{"apiVersion", "apps/v1"},
                  {"kind", "ReplicaSet"},
                  {"name", "web-1"},
                  {"uid", "u-1"},
                  {"controller", true},
                  {"blockOwnerDeletion", false}}}},
               {"managedFields",
                {{{"manager", "kubectl"},
                  {"operation", "Update"},
                  {"apiVersion", "v1"},
                  {"time", "2024-05-06T07:08:09Z"},
                  {"fieldsType", "FieldsV1"},
                  {"fieldsV1", {{"f:metadata", {{"f:labels", json::object()}}}}}}}}};
  json container = {
      {"name", "web"},
      {"image", "nginx:1.27"},
      {"command", {"/bin/sh", "-c"}},
      {"args", {"echo hi", ""}},
      {"ports", {{{"containerPort", 80}, {"protocol", "TCP"}, {"name", "http"}}, {{"containerPort", 0}}}},
      {"env",
       {{{"name", "A"}, {"value", "1"}},
        {{"name", "B"}, {"valueFrom", {{"secretKeyRef", {{"name", "s"}, {"key", "k"}, {"optional", false}}}}}},
        {{"name", "C"}, {"valueFrom", {{"fieldRef", {{"apiVersion", "v1"}, {"fieldPath", "status.podIP"}}}}}}}},
      {"resources", {{"limits", {{"cpu", "500m"}, {"memory", "128Mi"}}}, {"requests", {{"cpu", "100m"}}}}},
      {"volumeMounts", {{{"name", "data"}, {"mountPath", "/data"}, {"readOnly", true}}}},
      {"livenessProbe",
       {{"httpGet", {{"path", "/healthz"}, {"port", "http"}, {"scheme", "HTTP"}}},
        {"initialDelaySeconds", 3},
        {"periodSeconds", 10}}},
      {"readinessProbe", {{"tcpSocket", {{"port", 8080}}}, {"timeoutSeconds", 1}}},
      {"startupProbe", {{"exec", {{"command", {"true"}}}}, {"failureThreshold", 30}}},
      {"securityContext",
       {{"privileged", false},
        {"runAsUser", 0},
        {"capabilities", {{"add", {"NET_ADMIN"}}, {"drop", {"ALL"}}}},
        {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
      {"terminationMessagePath", "/dev/termination-log"},
      {"terminationMessagePolicy", "File"},
      {"imagePullPolicy", "IfNotPresent"},
      {"stdin", true},
      {"tty", true}};
  json pod_spec = {
      {"containers", {container}},
      {"initContainers", {{{"name", "init"}, {"image", "busybox"}, {"resources", json::object()}}}},
      {"volumes",
       {{{"name", "data"}, {"emptyDir", json::object()}},
        {{"name", "cfg"}, {"configMap", {{"name", "cm"}, {"defaultMode", 420}}}},
        {{"name", "sec"}, {"secret", {{"secretName", "s"}, {"items", {{{"key", "a"}, {"path", "b"}, {"mode", 256}}}}}}},
        {{"name", "host"}, {"hostPath", {{"path", "/var/log"}, {"type", "Directory"}}}},
        {{"name", "mem"}, {"emptyDir", {{"medium", "Memory"}, {"sizeLimit", "64Mi"}}}}}},
      {"restartPolicy", "Always"},
      {"terminationGracePeriodSeconds", 0},
      {"dnsPolicy", "ClusterFirst"},
      {"nodeSelector", {{"kubernetes.io/os", "linux"}}},
      {"serviceAccountName", "default"},
      {"automountServiceAccountToken", false},
      {"nodeName", "node-1"},
      {"hostNetwork", true},
      {"securityContext", {{"runAsNonRoot", true}, {"supplementalGroups", {1, 2, 3000000000}}, {"fsGroup", 2000}}},
      {"imagePullSecrets", {{{"name", "regcred"}}}},
      {"schedulerName", "default-scheduler"},
      {"tolerations", {{{"key", "k"}, {"operator", "Exists"}, {"effect", "NoExecute"}, {"tolerationSeconds", 0}}}},
      {"priority", 0},
      {"enableServiceLinks", true},
      {"dnsConfig", {{"options", {{{"name", "ndots"}, {"value", "2"}}}}}},
      {"overhead", {{"cpu", "10m"}}}};
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", meta},
              {"spec", pod_spec},
              {"status",
               {{"phase", "Running"},
                {"conditions", {{{"type", "Ready"}, {"status", "True"}, {"lastTransitionTime", "2024-05-06T07:08:10Z"}}}},
                {"hostIP", "10.0.0.1"},
                {"podIP", "10.42.0.5"},
                {"podIPs", {{{"ip", "10.42.0.5"}}}},
                {"startTime", "2024-05-06T07:08:09Z"},
                {"containerStatuses",
                 {{{"name", "web"},
                   {"ready", false},
                   {"restartCount", 0},
                   {"image", "nginx:1.27"},
                   {"imageID", ""},
                   {"started", false},
                   {"state", {{"terminated", {{"exitCode", 0}, {"finishedAt", "2024-05-06T07:08:11Z"}}}}}}}},
                {"qosClass", "Burstable"}}}};
  json template_spec = {{"metadata", {{"labels", {{"app", "web"}}}}}, {"spec", pod_spec}};
  json selector = {{"matchLabels", {{"app", "web"}}},
                   {"matchExpressions", {{{"key", "tier"}, {"operator", "In"}, {"values", {"a", "b"}}}}}};
  json job_spec = {{"parallelism", 2},
                   {"completions", 0},
                   {"backoffLimit", 6},
                   {"activeDeadlineSeconds", 600},
                   {"template", {{"metadata", json::object()}, {"spec", {{"containers", {container}}, {"restartPolicy", "Never"}}}}},
                   {"ttlSecondsAfterFinished", 100},
                   {"completionMode", "NonIndexed"},
                   {"suspend", false},
                   {"selector", {{"matchLabels", {{"batch.kubernetes.io/controller-uid", "u"}}}}},
                   {"manualSelector", false}};
  std::vector<json> objects = {
      {{"apiVersion", "v1"},
       {"kind", "Namespace"},
       {"metadata", {{"name", "team-a"}, {"labels", {{"kubernetes.io/metadata.name", "team-a"}}}}},
       {"spec", {{"finalizers", {"kubernetes"}}}},
       {"status", {{"phase", "Active"}}}},
      {{"apiVersion", "v1"},
       {"kind", "ConfigMap"},
       {"metadata", meta},
       {"data", {{"a.conf", "x=1\n"}, {"empty", ""}}},
       {"binaryData", {{"blob", "AAEC/w=="}}},
       {"immutable", false}},
      {{"apiVersion", "v1"},
       {"kind", "Secret"},
       {"metadata", meta},
       {"type", "Opaque"},
       {"data", {{"password", "czNjcjN0"}, {"empty", ""}}}},
      {{"apiVersion", "v1"},
       {"kind", "ServiceAccount"},
       {"metadata", meta},
       {"secrets", {{{"name", "token"}}}},
       {"imagePullSecrets", {{{"name", "regcred"}}}},
       {"automountServiceAccountToken", false}},
      pod,
      {{"apiVersion", "v1"},
       {"kind", "Service"},
       {"metadata", meta},
       {"spec",
        {{"ports",
          {{{"name", "http"}, {"protocol", "TCP"}, {"port", 80}, {"targetPort", 8080}, {"nodePort", 30080}},
           {{"name", "dns"}, {"protocol", "UDP"}, {"port", 53}, {"targetPort", "dns"}, {"appProtocol", "dns"}}}},
         {"selector", {{"app", "web"}}},
         {"clusterIP", "10.43.0.10"},
         {"clusterIPs", {"10.43.0.10"}},
         {"type", "NodePort"},
         {"sessionAffinity", "ClientIP"},
         {"sessionAffinityConfig", {{"clientIP", {{"timeoutSeconds", 10800}}}}},
         {"externalTrafficPolicy", "Cluster"},
         {"ipFamilies", {"IPv4"}},
         {"ipFamilyPolicy", "SingleStack"},
         {"internalTrafficPolicy", "Cluster"},
         {"allocateLoadBalancerNodePorts", false}}},
       {"status", {{"loadBalancer", {{"ingress", {{{"ip", "1.2.3.4"}, {"ipMode", "VIP"}}}}}}}}},
      {{"apiVersion", "apps/v1"},
       {"kind", "Deployment"},
       {"metadata", meta},
       {"spec",
        {{"replicas", 0},
         {"selector", selector},
         {"template", template_spec},
         {"strategy", {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxUnavailable", "25%"}, {"maxSurge", 1}}}}},
         {"revisionHistoryLimit", 10},
         {"progressDeadlineSeconds", 600}}},
       {"status",
        {{"observedGeneration", 3},
         {"replicas", 2},
         {"conditions",
          {{{"type", "Available"},
            {"status", "True"},
            {"lastUpdateTime", "2024-05-06T07:08:09Z"},
            {"reason", "MinimumReplicasAvailable"}}}}}}},
      {{"apiVersion", "apps/v1"},
       {"kind", "ReplicaSet"},
       {"metadata", meta},
       {"spec", {{"replicas", 3}, {"selector", selector}, {"template", template_spec}}},
       {"status", {{"replicas", 0}, {"readyReplicas", 1}}}},
      {{"apiVersion", "batch/v1"},
       {"kind", "Job"},
       {"metadata", meta},
       {"spec", job_spec},
       {"status",
        {{"startTime", "2024-05-06T07:08:09Z"},
         {"active", 1},
         {"ready", 0},
         {"terminating", 0},
         {"uncountedTerminatedPods", {{"succeeded", {"p1"}}}},
         {"conditions", {{{"type", "Complete"}, {"status", "True"}, {"lastProbeTime", "2024-05-06T07:08:09Z"}}}}}}},
      {{"apiVersion", "batch/v1"},
       {"kind", "CronJob"},
       {"metadata", meta},
       {"spec",
        {{"schedule", "*/5 * * * *"},
         {"timeZone", "Etc/UTC"},
         {"concurrencyPolicy", "Forbid"},
         {"suspend", true},
         {"startingDeadlineSeconds", 0},
         {"successfulJobsHistoryLimit", 3},
         {"failedJobsHistoryLimit", 1},
         {"jobTemplate", {{"metadata", {{"name", "sample"}}}, {"spec", job_spec}}}}},
       {"status", {{"active", {{{"kind", "Job"}, {"name", "sample-1"}, {"namespace", "default"}}}},
                   {"lastScheduleTime", "2024-05-06T07:05:00Z"}}}},
      {{"apiVersion", "rbac.authorization.k8s.io/v1"},
       {"kind", "Role"},
       {"metadata", meta},
       {"rules",
        {{{"verbs", {"get", "list"}}, {"apiGroups", {""}}, {"resources", {"pods", "pods/log"}}, {"resourceNames", {"a"}}}}}},
      {{"apiVersion", "rbac.authorization.k8s.io/v1"},
       {"kind", "ClusterRole"},
       {"metadata", {{"name", "monitoring"}}},
       {"rules", {{{"verbs", {"get"}}, {"nonResourceURLs", {"/metrics", "/healthz/*"}}}}},
       {"aggregationRule", {{"clusterRoleSelectors", {{{"matchLabels", {{"rbac.example.com/aggregate", "true"}}}}}}}}},
      {{"apiVersion", "rbac.authorization.k8s.io/v1"},
       {"kind", "RoleBinding"},
       {"metadata", meta},
       {"subjects",
        {{{"kind", "User"}, {"apiGroup", "rbac.authorization.k8s.io"}, {"name", "jane"}},
         {{"kind", "ServiceAccount"}, {"name", "default"}, {"namespace", "default"}}}},
       {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", "reader"}}}},
      {{"apiVersion", "rbac.authorization.k8s.io/v1"},
       {"kind", "ClusterRoleBinding"},
       {"metadata", {{"name", "admins"}}},
       {"subjects", {{{"kind", "Group"}, {"apiGroup", "rbac.authorization.k8s.io"}, {"name", "ops"}}}},
       {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "ClusterRole"}, {"name", "cluster-admin"}}}},
      {{"apiVersion", "scheduling.k8s.io/v1"},
       {"kind", "PriorityClass"},
       {"metadata", {{"name", "high"}}},
       {"value", 0},
       {"globalDefault", true},
       {"description", "for important pods"},
       {"preemptionPolicy", "Never"}},
      {{"apiVersion", "autoscaling/v1"},
       {"kind", "Scale"},
       {"metadata", meta},
       {"spec", {{"replicas", 5}}},
       {"status", {{"replicas", 0}, {"selector", "app=web"}}}},
  };
  return objects;
}

TEST(ProtobufCodecTest, EveryModelledKindRoundTripsJsonProtobufJson) {
  const ProtobufCodec& codec = ProtobufCodec::Builtin();
  std::set<std::string> kinds;
  for (const json& object : SampleObjects()) {
    std::string kind = object["kind"];
    kinds.insert(kind);
    auto encoded = codec.EncodeObject(object);
    ASSERT_TRUE(encoded.ok()) << kind << ": " << encoded.status();
    ASSERT_EQ(encoded->substr(0, 4), std::string("k8s\0", 4));
    auto decoded = codec.DecodeObject(*encoded);
    ASSERT_TRUE(decoded.ok()) << kind << ": " << decoded.status();
    EXPECT_EQ(*decoded, object) << kind << "\n got: " << decoded->dump(1) << "\nwant: " << object.dump(1);
  }
  // Every kind the schema models has a sample.
  for (const auto& k : schema::Schema::Builtin().kinds()) EXPECT_TRUE(kinds.count(k.kind)) << k.kind;
}

// What Go's generated marshalling sends for a Namespace made by
// `kubectl create namespace team-a`: every non-pointer field, zero or not.
TEST(ProtobufCodecTest, GoZeroValuesBecomeTheJsonKubeApiserverStores) {
  ProtobufWriter meta;
  meta.BytesField(1, "team-a");  // name
  meta.BytesField(2, "");        // generateName
  meta.BytesField(3, "");        // namespace
  meta.BytesField(4, "");        // selfLink
  meta.BytesField(5, "");        // uid
  meta.BytesField(6, "");        // resourceVersion
  meta.VarintField(7, 0);        // generation
  meta.BytesField(8, "");        // creationTimestamp: the zero time
  ProtobufWriter ns;
  ns.BytesField(1, meta.data());
  ns.BytesField(2, "");  // spec
  ProtobufWriter status;
  status.BytesField(1, "");  // phase
  ns.BytesField(3, status.data());
  auto decoded = ProtobufCodec::Builtin().DecodeObject(SerializeEnvelope({"v1", "Namespace", ns.data(), "", ""}));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, json::parse(R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team-a"},
                                      "spec":{},"status":{}})"));

  // A Deployment with replicas 0 (a pointer: kept) and a container port 0 (required: kept).
  ProtobufWriter port;
  port.VarintField(3, 0);
  ProtobufWriter container;
  container.BytesField(1, "c");
  container.BytesField(6, port.data());
  container.VarintField(16, 0);  // stdin false: dropped
  ProtobufWriter pod_spec;
  pod_spec.BytesField(2, container.data());
  ProtobufWriter tmpl;
  tmpl.BytesField(2, pod_spec.data());
  ProtobufWriter spec;
  spec.VarintField(1, 0);
  spec.BytesField(3, tmpl.data());
  spec.VarintField(5, 0);  // minReadySeconds 0: dropped
  ProtobufWriter deploy;
  deploy.BytesField(2, spec.data());
  decoded = ProtobufCodec::Builtin().DecodeObject(SerializeEnvelope({"apps/v1", "Deployment", deploy.data(), "", ""}));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ((*decoded)["spec"], json::parse(R"({"replicas":0,"template":{"spec":{"containers":[
                                                 {"name":"c","ports":[{"containerPort":0}]}]}}})"));
}

TEST(ProtobufCodecTest, UnmodelledFieldsAreIgnoredWhenZeroAndRefusedOtherwise) {
  const ProtobufCodec& codec = ProtobufCodec::Builtin();
  ProtobufWriter spec;
  spec.BytesField(3, "Always");
  spec.BytesField(999, "");  // an unknown empty string
  ProtobufWriter pod;
  pod.BytesField(2, spec.data());
  auto decoded = codec.DecodeObject(SerializeEnvelope({"v1", "Pod", pod.data(), "", ""}));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ((*decoded)["spec"], json::parse(R"({"restartPolicy":"Always"})"));

  ProtobufWriter spec2;
  spec2.BytesField(999, "x");
  ProtobufWriter pod2;
  pod2.BytesField(2, spec2.data());
  decoded = codec.DecodeObject(SerializeEnvelope({"v1", "Pod", pod2.data(), "", ""}));
  ASSERT_FALSE(decoded.ok());
  EXPECT_TRUE(absl::IsUnimplemented(decoded.status()));
  EXPECT_NE(decoded.status().message().find("protobuf field 999 of core/v1.PodSpec (in spec)"), std::string::npos)
      << decoded.status();
}

TEST(ProtobufCodecTest, KindsWithoutSchemaAndCompressedBodiesAreUnsupported) {
  const ProtobufCodec& codec = ProtobufCodec::Builtin();
  auto decoded = codec.DecodeObject(SerializeEnvelope({"v1", "Endpoints", "", "", ""}));
  ASSERT_FALSE(decoded.ok());
  EXPECT_TRUE(absl::IsUnimplemented(decoded.status()));
  EXPECT_NE(decoded.status().message().find("Endpoints"), std::string::npos);
  decoded = codec.DecodeObject(SerializeEnvelope({"v1", "Namespace", "", "gzip", ""}));
  EXPECT_TRUE(absl::IsUnimplemented(decoded.status())) << decoded.status();
  decoded = codec.DecodeObject(SerializeEnvelope({"", "", "", "", ""}));
  EXPECT_TRUE(absl::IsInvalidArgument(decoded.status())) << decoded.status();
}

TEST(ProtobufCodecTest, MalformedMessagesAreInvalidArgument) {
  const ProtobufCodec& codec = ProtobufCodec::Builtin();
  auto ns = [&](const std::string& raw) { return codec.DecodeObject(SerializeEnvelope({"v1", "Namespace", raw, "", ""})); };
  auto time_at = [](int64_t seconds) {
    ProtobufWriter time, meta, obj;
    time.IntField(1, seconds);
    meta.BytesField(8, time.data());
    obj.BytesField(1, meta.data());
    return obj.Release();
  };
  for (const std::string& raw : {
           Bytes({0x0a}),                          // truncated length
           Bytes({0x0a, 0x05, 0x0a}),              // length past the end
           Bytes({0x08, 0x01}),                    // metadata as a varint
           Bytes({0x0a, 0x02, 0x0a, 0x80}),        // name with a truncated length
           Bytes({0x0a, 0x03, 0x0a, 0x01, 0xff}),  // name not UTF-8
           Bytes({0x0a, 0x02, 0x38, 0x80}),        // generation truncated
           Bytes({0x0a, 0x05, 0x42, 0x03, 0x08, 0x01, 0x10}),  // truncated nanos
           time_at(-62135596801),                  // before year 1
           time_at(253402300800),                  // after year 9999
       }) {
    auto decoded = ns(raw);
    ASSERT_FALSE(decoded.ok()) << testing::PrintToString(raw);
    EXPECT_TRUE(absl::IsInvalidArgument(decoded.status())) << decoded.status();
  }
  EXPECT_TRUE(ns(time_at(0)).ok());
  EXPECT_TRUE(ns(Bytes({0x0a, 0x02, 0x42, 0x00})).ok());  // the zero time

  // The schema's types do not recurse, so deep nesting can only come as
  // unknown fields: their zero check stops at a bound (and then counts the
  // value as set), never overflowing the stack.
  std::string deep;
  for (int i = 0; i < 5000; ++i) {
    ProtobufWriter w;
    w.BytesField(999, deep);
    deep = w.Release();
  }
  auto decoded = ns(deep);
  ASSERT_FALSE(decoded.ok());
  EXPECT_TRUE(absl::IsUnimplemented(decoded.status())) << decoded.status();
}

TEST(ProtobufCodecTest, RandomCorruptionNeverCrashes) {
  const ProtobufCodec& codec = ProtobufCodec::Builtin();
  std::mt19937 rng(20240506);
  int decoded_ok = 0;
  for (const json& object : SampleObjects()) {
    auto encoded = codec.EncodeObject(object);
    ASSERT_TRUE(encoded.ok());
    for (int i = 0; i < 300; ++i) {
      std::string bytes = *encoded;
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        size_t pos = 4 + rng() % (bytes.size() - 4);
        switch (rng() % 3) {
          case 0: bytes[pos] = static_cast<char>(rng()); break;
          case 1: bytes.erase(pos, 1 + rng() % 8); break;
          default: bytes.insert(pos, 1, static_cast<char>(rng())); break;
        }
        if (bytes.size() <= 4) break;
      }
      auto decoded = codec.DecodeObject(bytes);
      if (decoded.ok()) {
        ++decoded_ok;
        EXPECT_NO_THROW((void)decoded->dump());
      } else {
        EXPECT_TRUE(absl::IsInvalidArgument(decoded.status()) || absl::IsUnimplemented(decoded.status()))
            << decoded.status();
      }
    }
  }
  EXPECT_GT(decoded_ok, 0);
}

TEST(ProtobufCodecTest, SchemaProtobufNumbersAreUniquePerMessage) {
  for (const auto& [name, type] : schema::Schema::Builtin().types()) {
    std::set<std::vector<int>> paths;
    for (const auto& f : type.fields) {
      if (f.proto_path.empty()) {
        EXPECT_TRUE(f.json_name == "apiVersion" || f.json_name == "kind") << name << "." << f.json_name;
        continue;
      }
      EXPECT_TRUE(paths.insert(f.proto_path).second) << name << "." << f.json_name;
      // An inline prefix is never also a field of its own.
      for (size_t n = 1; n < f.proto_path.size(); ++n) {
        std::vector<int> prefix(f.proto_path.begin(), f.proto_path.begin() + n);
        for (const auto& other : type.fields) EXPECT_NE(other.proto_path, prefix) << name << "." << f.json_name;
      }
    }
  }
}

TEST(ProtobufCodecTest, EncodingRefusesFieldsWithoutNumbers) {
  json cm = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "x"}}}, {"extra", 1}};
  auto encoded = ProtobufCodec::Builtin().EncodeObject(cm);
  ASSERT_FALSE(encoded.ok());
  EXPECT_TRUE(absl::IsUnimplemented(encoded.status()));
  json bad = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", 5}}}};
  EXPECT_TRUE(absl::IsInvalidArgument(ProtobufCodec::Builtin().EncodeObject(bad).status()));
}

}  // namespace
}  // namespace kelpie::api::protobuf
