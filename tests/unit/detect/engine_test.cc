#include <string>
#include <vector>

#include "control/detect/condition_node.h"
#include "control/detect/engine.h"
#include "gtest/gtest.h"

namespace kelpie::detect {
namespace {

std::unique_ptr<Engine> CompileOrDie(const std::string& yaml) {
  RuleSet set;
  absl::Status status = set.AddYaml("rules.yaml", yaml);
  EXPECT_TRUE(status.ok()) << status;
  auto engine = Engine::Compile(set);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? std::move(*engine) : nullptr;
}

std::string Rule(const std::string& condition) {
  return "- rule: r\n  desc: d\n  condition: " + condition + "\n  output: out\n  priority: warning\n";
}

std::vector<std::string> Matches(const Engine& engine, const Event& event) {
  std::vector<std::string> names;
  engine.Evaluate(event, [&](const CompiledRule& rule) { names.push_back(rule.name()); });
  return names;
}

bool Fires(const std::string& condition, const Event& event, const std::string& prelude = "") {
  auto engine = CompileOrDie(prelude + Rule(condition));
  return engine != nullptr && !Matches(*engine, event).empty();
}

Event ExecEvent() {
  Event e;
  e.type = EventType::kExecve;
  e.proc.name = "bash";
  e.proc.exepath = "/bin/bash";
  e.proc.cmdline = "bash -c id";
  e.proc.args = "-c id";
  e.proc.uid = 1000;
  e.proc.pid = 42;
  e.proc.ancestors = {"nginx", "containerd-shim"};
  e.proc.ancestor_count = 2;
  e.container.id = "abc123";
  return e;
}

TEST(ConditionTest, StringOperators) {
  Event e = ExecEvent();
  EXPECT_TRUE(Fires("proc.name = bash", e));
  EXPECT_TRUE(Fires("proc.name == bash", e));
  EXPECT_FALSE(Fires("proc.name = sh", e));
  EXPECT_TRUE(Fires("proc.name != sh", e));
  EXPECT_FALSE(Fires("proc.name != bash", e));
  EXPECT_TRUE(Fires("proc.exepath startswith /bin/", e));
  EXPECT_TRUE(Fires("proc.exepath startswith (/usr/, /bin/)", e));
  EXPECT_FALSE(Fires("proc.exepath startswith (/usr/, /sbin/)", e));
  EXPECT_TRUE(Fires("proc.exepath endswith /bash", e));
  EXPECT_TRUE(Fires("proc.cmdline contains \"-c id\"", e));
  EXPECT_TRUE(Fires("proc.cmdline icontains 'BASH -C'", e));
  EXPECT_FALSE(Fires("proc.cmdline contains BASH", e));
  EXPECT_TRUE(Fires("proc.exepath glob /b?n/*sh", e));
  EXPECT_TRUE(Fires("proc.exepath glob '/[a-c]in/ba[!x]h'", e));
  EXPECT_FALSE(Fires("proc.exepath glob /usr/*", e));
  EXPECT_TRUE(Fires("proc.name in (sh, bash)", e));
  EXPECT_FALSE(Fires("proc.name in (sh, zsh)", e));
  EXPECT_TRUE(Fires("proc.name < c and proc.name > a and proc.name >= bash and proc.name <= bash", e));
  EXPECT_TRUE(Fires("proc.name exists", e));
  EXPECT_FALSE(Fires("user.name exists", e));
}

TEST(ConditionTest, NumericAndBoolOperators) {
  Event e = ExecEvent();
  e.type = EventType::kOpen;
  e.arg.flags = 01 | 01000;  // O_WRONLY|O_TRUNC
  EXPECT_TRUE(Fires("user.uid = 1000", e));
  EXPECT_TRUE(Fires("user.uid > 999 and user.uid < 1001 and user.uid >= 1000 and user.uid <= 1000", e));
  EXPECT_TRUE(Fires("user.uid in (0, 1000)", e));
  EXPECT_TRUE(Fires("evt.arg.flags contains O_TRUNC", e));
  EXPECT_FALSE(Fires("evt.arg.flags contains O_APPEND", e));
  EXPECT_TRUE(Fires("evt.arg.flags contains 0x200", e));
  EXPECT_TRUE(Fires("evt.is_open_write = true and evt.is_open_read = false", e));
}

TEST(ConditionTest, PrecedenceAndParentheses) {
  Event e = ExecEvent();
  // and binds tighter than or; not tighter than and.
  EXPECT_TRUE(Fires("proc.name = sh and user.uid = 1 or proc.name = bash", e));
  EXPECT_FALSE(Fires("proc.name = sh and (user.uid = 1 or proc.name = bash)", e));
  EXPECT_TRUE(Fires("not proc.name = sh and proc.name = bash", e));
  EXPECT_FALSE(Fires("not (proc.name = sh or proc.name = bash)", e));
  EXPECT_TRUE(Fires("not not proc.name = bash", e));
}

TEST(ConditionTest, AncestorsAndLabels) {
  Event e = ExecEvent();
  PodLabel labels[] = {{"app", "web"}, {"app.kubernetes.io/name", "shop"}};
  e.container.k8s_pod_labels = labels;
  EXPECT_TRUE(Fires("proc.pname = nginx", e));
  EXPECT_TRUE(Fires("proc.aname[0] = bash", e));
  EXPECT_TRUE(Fires("proc.aname[2] = containerd-shim", e));
  EXPECT_FALSE(Fires("proc.aname[3] exists", e));
  EXPECT_TRUE(Fires("proc.aname in (containerd-shim)", e));
  EXPECT_TRUE(Fires("proc.aname intersects (sshd, nginx)", e));
  EXPECT_TRUE(Fires("k8s.pod.label[app] = web", e));
  EXPECT_TRUE(Fires("k8s.pod.label[app.kubernetes.io/name] = shop", e));
  EXPECT_FALSE(Fires("k8s.pod.label[tier] exists", e));
}

TEST(ConditionTest, PathFieldsAndPmatch) {
  Event e;
  e.type = EventType::kOpen;
  e.fd.name = "/etc/ssh/sshd_config";
  EXPECT_TRUE(Fires("fd.directory = /etc/ssh and fd.filename = sshd_config", e));
  EXPECT_TRUE(Fires("fd.name pmatch (/etc/ssh)", e));
  EXPECT_TRUE(Fires("fd.name pmatch (/etc/)", e));
  EXPECT_FALSE(Fires("fd.name pmatch (/etc/ss)", e));
  EXPECT_FALSE(Fires("fd.name pmatch (/var)", e));
}

TEST(ConditionTest, MacrosAndNestedLists) {
  std::string prelude =
      "- list: a\n  items: [sh]\n"
      "- list: b\n  items: [a, bash]\n"
      "- macro: shells\n  condition: proc.name in (b)\n"
      "- macro: shell_in_container\n  condition: shells and container.id exists\n";
  Event e = ExecEvent();
  EXPECT_TRUE(Fires("shell_in_container", e, prelude));
  e.proc.name = "sh";
  EXPECT_TRUE(Fires("shells", e, prelude));
  e.proc.name = "zsh";
  EXPECT_FALSE(Fires("shells", e, prelude));
  // Quoted values are never list names.
  e.proc.name = "b";
  EXPECT_TRUE(Fires("proc.name in (\"b\")", e, prelude));
}

TEST(ConditionTest, EventTypeIndex) {
  auto engine = CompileOrDie(
      "- rule: exec\n  desc: d\n  condition: evt.type = execve and proc.name = bash\n  output: o\n  priority: info\n"
      "- rule: files\n  desc: d\n  condition: evt.type in (open, openat2, chmod)\n  output: o\n  priority: info\n"
      "- rule: not_exec\n  desc: d\n  condition: evt.type != execve and proc.name = bash\n  output: o\n  priority: info\n"
      "- rule: any\n  desc: d\n  condition: proc.name = bash\n  output: o\n  priority: info\n");
  ASSERT_NE(engine, nullptr);
  auto names = [](const std::vector<const CompiledRule*>& rules) {
    std::vector<std::string> out;
    for (const CompiledRule* rule : rules) out.push_back(rule->name());
    return out;
  };
  EXPECT_EQ(names(engine->RulesFor(EventType::kExecve)), (std::vector<std::string>{"exec", "any"}));
  EXPECT_EQ(names(engine->RulesFor(EventType::kOpen)),
            (std::vector<std::string>{"files", "not_exec", "any"}));
  EXPECT_EQ(names(engine->RulesFor(EventType::kConnect)), (std::vector<std::string>{"not_exec", "any"}));
}

TEST(RuleSetTest, ExceptionsSuppressListedTuples) {
  std::string yaml =
      "- list: editors\n  items: [vi, nano]\n"
      "- rule: r\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: error\n"
      "  exceptions:\n"
      "    - name: editors_in_etc\n      fields: [proc.name, fd.directory]\n"
      "      comps: [in, startswith]\n      values:\n        - [editors, /etc]\n"
      "    - name: single\n      fields: proc.name\n      comps: in\n      values: [cat, less]\n";
  auto engine = CompileOrDie(yaml);
  ASSERT_NE(engine, nullptr);
  Event e;
  e.type = EventType::kOpen;
  e.proc.name = "vi";
  e.fd.name = "/etc/hosts";
  EXPECT_TRUE(Matches(*engine, e).empty());
  e.fd.name = "/var/x";
  EXPECT_EQ(Matches(*engine, e).size(), 1u);
  e.proc.name = "less";
  EXPECT_TRUE(Matches(*engine, e).empty());
}

TEST(RuleSetTest, AppendAndOverride) {
  RuleSet set;
  ASSERT_TRUE(set.AddYaml("base.yaml",
                          "- list: l\n  items: [a]\n"
                          "- macro: m\n  condition: proc.name in (l)\n"
                          "- rule: r\n  desc: d\n  condition: m\n  output: o\n  priority: warning\n"
                          "- rule: off\n  desc: d\n  condition: proc.name = a\n  output: o\n  priority: warning\n")
                  .ok());
  ASSERT_TRUE(set.AddYaml("local.yaml",
                          "- list: l\n  items: [b]\n  append: true\n"
                          "- rule: r\n  condition: and user.uid = 0\n  append: true\n"
                          "- rule: off\n  enabled: false\n"
                          "- rule: r\n  priority: critical\n  override:\n    priority: replace\n")
                  .ok());
  EXPECT_EQ(set.FindList("l")->items, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(set.FindRule("r")->condition, "m and user.uid = 0");
  EXPECT_EQ(set.FindRule("r")->priority, Priority::kCritical);
  EXPECT_FALSE(set.FindRule("off")->enabled);
  auto engine = Engine::Compile(set);
  ASSERT_TRUE(engine.ok()) << engine.status();
  ASSERT_EQ((*engine)->rules().size(), 1u);
  Event e = ExecEvent();
  e.proc.name = "b";
  e.proc.uid = 0;
  EXPECT_EQ(Matches(**engine, e).size(), 1u);
  e.proc.uid = 5;
  EXPECT_TRUE(Matches(**engine, e).empty());

  // A list redefined without append replaces the items.
  ASSERT_TRUE(set.AddYaml("replace.yaml", "- list: l\n  items: [c]\n").ok());
  EXPECT_EQ(set.FindList("l")->items, (std::vector<std::string>{"c"}));
}

TEST(RuleSetTest, PrioritiesAndMinimum) {
  RuleSet set;
  ASSERT_TRUE(set.AddYaml("p.yaml",
                          "- rule: a\n  desc: d\n  condition: proc.name = x\n  output: o\n  priority: EMERGENCY\n"
                          "- rule: b\n  desc: d\n  condition: proc.name = x\n  output: o\n  priority: debug\n"
                          "- rule: c\n  desc: d\n  condition: proc.name = x\n  output: o\n  priority: notice\n"
                          "  action: quarantine\n")
                  .ok());
  EXPECT_EQ(set.FindRule("a")->priority, Priority::kEmergency);
  EXPECT_EQ(set.FindRule("c")->action, Action::kQuarantine);
  EngineOptions options;
  options.minimum_priority = Priority::kNotice;
  auto engine = Engine::Compile(set, options);
  ASSERT_TRUE(engine.ok());
  EXPECT_EQ((*engine)->rules().size(), 2u);
}

TEST(EngineTest, OutputRendering) {
  auto engine = CompileOrDie(
      "- rule: r\n  desc: d\n  condition: proc.name = bash\n"
      "  output: \"%proc.name (uid=%user.uid) parent %proc.aname[1]. user %user.name 100%%\"\n"
      "  priority: warning\n");
  ASSERT_NE(engine, nullptr);
  Event e = ExecEvent();
  std::string rendered;
  engine->Evaluate(e, [&](const CompiledRule& rule) { rendered = rule.RenderOutput(e); });
  EXPECT_EQ(rendered, "bash (uid=1000) parent nginx. user <NA> 100%");
}

TEST(EngineTest, PrefilterFromConditions) {
  auto engine = CompileOrDie(
      "- rule: a\n  desc: d\n  condition: evt.type = open and fd.name startswith /etc/\n  output: o\n  priority: info\n"
      "- rule: b\n  desc: d\n  condition: evt.type = open and (fd.name in (/var/log/x) or fd.directory = /root)\n"
      "  output: o\n  priority: info\n"
      "- rule: c\n  desc: d\n  condition: evt.type = open and fd.name = /etc/shadow\n  output: o\n  priority: info\n"
      "- rule: d\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: info\n");
  ASSERT_NE(engine, nullptr);
  PrefilterSpec spec = engine->DerivePrefilter();
  const auto& open = spec.types[static_cast<size_t>(EventType::kOpen)];
  EXPECT_TRUE(open.wanted);
  EXPECT_EQ(open.path_prefixes, (std::vector<std::string>{"/etc/", "/root", "/var/log/x"}));
  EXPECT_TRUE(spec.types[static_cast<size_t>(EventType::kExecve)].wanted);
  EXPECT_TRUE(spec.types[static_cast<size_t>(EventType::kExecve)].path_prefixes.empty());
  EXPECT_FALSE(spec.types[static_cast<size_t>(EventType::kConnect)].wanted);
}

TEST(GlobTest, Patterns) {
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("/etc/*.conf", "/etc/a/b.conf"));
  EXPECT_FALSE(GlobMatch("/etc/*.conf", "/etc/a.confx"));
  EXPECT_TRUE(GlobMatch("a*b*c", "axxbyyc"));
  EXPECT_FALSE(GlobMatch("a?c", "ac"));
  EXPECT_TRUE(GlobMatch("[!a]x", "bx"));
  EXPECT_FALSE(GlobMatch("[!a]x", "ax"));
}

}  // namespace
}  // namespace kelpie::detect
