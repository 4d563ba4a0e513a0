// Every default rule fires on a synthetic event representing its technique
// and stays quiet on a benign counterpart; the set as a whole is checked for
// ATT&CK tags and for silence on ordinary workload activity.
#include <functional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "control/detect/engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kelpie::detect {
namespace {

const Engine& DefaultEngine() {
  static const Engine* engine = [] {
    auto rules = RuleSet::LoadFiles({std::string(KELPIE_DETECT_RULES_DIR) + "/default.yaml"});
    EXPECT_TRUE(rules.ok()) << rules.status();
    auto compiled = Engine::Compile(*rules);
    EXPECT_TRUE(compiled.ok()) << compiled.status();
    return compiled->release();
  }();
  return *engine;
}

std::set<std::string> Fired(const Event& event) {
  std::set<std::string> names;
  DefaultEngine().Evaluate(event, [&](const CompiledRule& rule) {
    names.insert(rule.name());
    EXPECT_THAT(rule.RenderOutput(event), testing::Not(testing::HasSubstr("%")));
  });
  return names;
}

const PodLabel kWebLabels[] = {{"app", "web"}};
const PodLabel kOperatorLabels[] = {{"app", "operator"}, {"kelpie.io/api-access", "allowed"}};

Event InPod(EventType type) {
  Event e;
  e.type = type;
  e.proc.pid = 4242;
  e.proc.ppid = 4200;
  e.proc.uid = 1000;
  e.proc.name = "python3";
  e.proc.exepath = "/usr/bin/python3";
  e.proc.cmdline = "python3 app.py";
  e.proc.args = "app.py";
  e.proc.ancestors = {"gunicorn", "containerd-shim"};
  e.proc.ancestor_count = 2;
  e.container.id = "3f2a9c1d";
  e.container.name = "web";
  e.container.image_repository = "registry.local/shop/web";
  e.container.k8s_namespace = "shop";
  e.container.k8s_pod_name = "web-7d9f";
  e.container.k8s_pod_labels = kWebLabels;
  return e;
}

Event Exec(std::string_view name, std::string_view exepath, std::string_view parent) {
  Event e = InPod(EventType::kExecve);
  e.proc.name = name;
  e.proc.exepath = exepath;
  e.proc.cmdline = name;
  e.proc.args = "";
  e.proc.ancestors = {parent, "containerd-shim"};
  return e;
}

Event Open(std::string_view path, int64_t flags, std::string_view process = "python3") {
  Event e = InPod(EventType::kOpen);
  e.fd.name = path;
  e.fd.type = "file";
  e.arg.flags = flags;
  e.proc.name = process;
  return e;
}

constexpr int64_t kRead = 0;
constexpr int64_t kWriteCreate = 01 | 0100;
constexpr int64_t kWriteTrunc = 01 | 01000;

struct Case {
  std::string rule;
  std::function<Event()> attack;
  std::function<Event()> benign;
};

std::vector<Case> Cases() {
  return {
      {"Terminal shell in container",
       [] { Event e = Exec("bash", "/bin/bash", "runc"); e.proc.tty = 34816; return e; },
       [] { return Exec("bash", "/bin/bash", "entrypoint"); }},
      {"Shell spawned by server process", [] { return Exec("sh", "/bin/sh", "nginx"); },
       [] { return Exec("sh", "/bin/sh", "tini"); }},
      {"Read sensitive file by untrusted process", [] { return Open("/etc/shadow", kRead, "python3"); },
       [] { return Open("/etc/shadow", kRead, "sshd"); }},
      {"Read sensitive file by untrusted process",
       [] { return Open("/var/run/secrets/kubernetes.io/serviceaccount/token", kRead, "curl"); },
       [] { return Open("/var/run/secrets/kubernetes.io/serviceaccount/token", kRead, "kubectl"); }},
      {"Read sensitive file by untrusted process", [] { return Open("/root/.ssh/id_rsa", kRead, "cat"); },
       [] { return Open("/root/.ssh_notes", kRead, "cat"); }},
      {"Write below etc in container", [] { return Open("/etc/passwd", kWriteCreate, "python3"); },
       [] { return Open("/etc/resolv.conf", kWriteCreate, "python3"); }},
      {"Write below binary directory", [] { return Open("/usr/bin/ls", kWriteTrunc, "curl"); },
       [] { return Open("/usr/bin/ls", kRead, "bash"); }},
      {"Drop and execute new binary in container",
       [] { Event e = Exec("xmrig", "/tmp/xmrig", "sh"); e.proc.exe_upper_layer = true; return e; },
       [] { return Exec("python3", "/usr/bin/python3", "sh"); }},
      {"Fileless execution via memfd", [] { return Exec("x", "/memfd:payload (deleted)", "python3"); },
       [] { return Exec("x", "/usr/local/bin/x", "python3"); }},
      {"Ptrace attach to process",
       [] { Event e = InPod(EventType::kPtrace); e.arg.request = 16; return e; },
       [] { Event e = InPod(EventType::kPtrace); e.arg.request = 16; e.proc.name = "gdb"; return e; }},
      {"Setuid or setgid bit set on file",
       [] { Event e = InPod(EventType::kChmod); e.fd.name = "/tmp/sh"; e.arg.mode = 04755; return e; },
       [] { Event e = InPod(EventType::kChmod); e.fd.name = "/tmp/sh"; e.arg.mode = 0755; return e; }},
      {"Mount of host path in container",
       [] {
         Event e = InPod(EventType::kMount);
         e.arg.source = "/dev/sda1";
         e.arg.target = "/mnt";
         e.arg.fstype = "ext4";
         return e;
       },
       [] {
         Event e = InPod(EventType::kMount);
         e.container.id = "host";
         e.arg.source = "tmpfs";
         return e;
       }},
      {"Namespace change in container",
       [] { Event e = InPod(EventType::kSetns); e.proc.name = "nsenter"; return e; },
       [] { Event e = InPod(EventType::kUnshare); e.proc.name = "runc"; return e; }},
      {"Write to cgroup release_agent",
       [] { return Open("/sys/fs/cgroup/rdma/release_agent", kWriteTrunc, "sh"); },
       [] { return Open("/sys/fs/cgroup/rdma/release_agent", kRead, "sh"); }},
      {"Access to host root through proc", [] { return Open("/proc/1/root/etc/hostname", kRead, "cat"); },
       [] { return Open("/proc/self/status", kRead, "cat"); }},
      {"Container runtime socket access",
       [] {
         Event e = InPod(EventType::kConnect);
         e.fd.name = "/run/containerd/containerd.sock";
         e.fd.type = "unix";
         return e;
       },
       [] {
         Event e = InPod(EventType::kConnect);
         e.fd.name = "/run/app/app.sock";
         e.fd.type = "unix";
         return e;
       }},
      {"Kernel module load",
       [] { Event e = InPod(EventType::kInitModule); e.proc.name = "python3"; e.arg.name = "rootkit"; return e; },
       [] { Event e = InPod(EventType::kInitModule); e.proc.name = "modprobe"; e.container.id = "host"; return e; }},
      {"BPF program load from container",
       [] { Event e = InPod(EventType::kBpf); e.arg.cmd = 5; return e; },
       [] { Event e = InPod(EventType::kBpf); e.arg.cmd = 5; e.container.id = "host"; return e; }},
      {"Outbound connection to crypto mining port",
       [] {
         Event e = InPod(EventType::kConnect);
         e.fd.type = "ipv4";
         e.fd.dip = "203.0.113.9";
         e.fd.dport = 3333;
         e.fd.name = "10.1.0.5:41000->203.0.113.9:3333";
         return e;
       },
       [] {
         Event e = InPod(EventType::kConnect);
         e.fd.type = "ipv4";
         e.fd.dip = "203.0.113.9";
         e.fd.dport = 443;
         return e;
       }},
      {"Contact Kubernetes API server from pod",
       [] {
         Event e = InPod(EventType::kConnect);
         e.fd.type = "ipv4";
         e.fd.dip = "10.96.0.1";
         e.fd.dport = 443;
         return e;
       },
       [] {
         Event e = InPod(EventType::kConnect);
         e.fd.type = "ipv4";
         e.fd.dip = "10.96.0.1";
         e.fd.dport = 443;
         e.container.k8s_pod_labels = kOperatorLabels;
         return e;
       }},
      {"Reverse shell",
       [] {
         Event e = InPod(EventType::kDup);
         e.proc.name = "bash";
         e.fd.type = "ipv4";
         e.fd.name = "10.1.0.5:41000->198.51.100.7:4444";
         e.arg.newfd = 0;
         return e;
       },
       [] {
         Event e = InPod(EventType::kDup);
         e.proc.name = "bash";
         e.fd.type = "file";
         e.fd.name = "/tmp/out.log";
         e.arg.newfd = 1;
         return e;
       }},
      {"Package management process in container", [] { return Exec("apt-get", "/usr/bin/apt-get", "sh"); },
       [] { return Exec("python3", "/usr/bin/python3", "sh"); }},
      {"Network scanning tool launched", [] { return Exec("nmap", "/usr/bin/nmap", "sh"); },
       [] { return Exec("curl", "/usr/bin/curl", "sh"); }},
      {"Log files truncated", [] { return Open("/var/log/auth.log", kWriteTrunc, "sh"); },
       [] { return Open("/var/log/auth.log", 01 | 02000, "rsyslogd"); }},
      {"Cron or service persistence change", [] { return Open("/etc/cron.d/backdoor", kWriteCreate, "sh"); },
       [] { return Open("/etc/cron.d/backdoor", kWriteCreate, "crontab"); }},
      {"Setuid to root in container",
       [] { Event e = InPod(EventType::kSetuid); e.arg.uid = 0; return e; },
       [] { Event e = InPod(EventType::kSetuid); e.arg.uid = 1000; return e; }},
  };
}

TEST(DefaultRulesTest, EachRuleFiresOnItsTechniqueAndNotOnBenignCounterpart) {
  std::set<std::string> covered;
  for (const Case& c : Cases()) {
    EXPECT_THAT(Fired(c.attack()), testing::Contains(c.rule)) << c.rule;
    EXPECT_THAT(Fired(c.benign()), testing::Not(testing::Contains(c.rule))) << c.rule << " (benign)";
    covered.insert(c.rule);
  }
  for (const auto& rule : DefaultEngine().rules()) {
    EXPECT_TRUE(covered.count(rule->name())) << "no test case for " << rule->name();
  }
}

TEST(DefaultRulesTest, AtLeastTwentyRulesEachWithAnAttackId) {
  const auto& rules = DefaultEngine().rules();
  EXPECT_GE(rules.size(), 20u);
  std::regex attack_id("T[0-9]{4}(\\.[0-9]{3})?");
  for (const auto& rule : rules) {
    bool tagged = false;
    for (const std::string& tag : rule->tags()) tagged |= std::regex_match(tag, attack_id);
    EXPECT_TRUE(tagged) << rule->name();
  }
}

TEST(DefaultRulesTest, OrdinaryWorkloadRaisesNothing) {
  std::vector<Event> benign = {
      Exec("python3", "/usr/bin/python3", "gunicorn"),
      Exec("ls", "/bin/ls", "bash"),
      Open("/app/static/index.html", kRead, "nginx"),
      Open("/etc/hosts", kRead, "python3"),
      Open("/etc/passwd", kRead, "python3"),
      Open("/tmp/cache/x", kWriteCreate, "python3"),
      Open("/var/log/nginx/access.log", 01 | 02000 | 0100, "nginx"),
  };
  Event connect = InPod(EventType::kConnect);
  connect.fd.type = "ipv4";
  connect.fd.dip = "10.1.2.3";
  connect.fd.dport = 5432;
  benign.push_back(connect);
  Event dup = InPod(EventType::kDup);
  dup.fd.type = "pipe";
  dup.arg.newfd = 1;
  benign.push_back(dup);
  for (const Event& event : benign) {
    EXPECT_THAT(Fired(event), testing::IsEmpty()) << EventTypeName(event.type) << " " << event.fd.name;
  }
}

TEST(DefaultRulesTest, PrefilterWantsOnlyEventTypesTheRulesUse) {
  PrefilterSpec spec = DefaultEngine().DerivePrefilter();
  EXPECT_TRUE(spec.types[static_cast<size_t>(EventType::kExecve)].wanted);
  EXPECT_TRUE(spec.types[static_cast<size_t>(EventType::kOpen)].wanted);
  EXPECT_FALSE(spec.types[static_cast<size_t>(EventType::kAccept)].wanted);
  EXPECT_FALSE(spec.types[static_cast<size_t>(EventType::kRename)].wanted);
}

}  // namespace
}  // namespace kelpie::detect
