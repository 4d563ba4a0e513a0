// A table of broken rule files and the exact message each must produce: the
// file, line and column of the mistake (mapped from inside the condition back
// to the YAML file, also for multi-line conditions) and what was expected.
#include <string>

#include "control/detect/engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kelpie::detect {
namespace {

struct BadFile {
  const char* name;
  std::string yaml;
  std::string error;
};

std::string RuleWith(const std::string& condition_line) {
  return "- rule: r\n  desc: d\n" + condition_line + "\n  output: o\n  priority: warning\n";
}

absl::Status LoadAndCompile(const std::string& yaml) {
  RuleSet set;
  if (absl::Status status = set.AddYaml("rules.yaml", yaml); !status.ok()) return status;
  return Engine::Compile(set).status();
}

class RuleErrorsTest : public testing::TestWithParam<BadFile> {};

TEST_P(RuleErrorsTest, ReportsExactPosition) {
  absl::Status status = LoadAndCompile(GetParam().yaml);
  ASSERT_FALSE(status.ok()) << GetParam().name;
  EXPECT_EQ(std::string(status.message()), GetParam().error) << GetParam().name;
}

INSTANTIATE_TEST_SUITE_P(
    Table, RuleErrorsTest,
    testing::Values(
        BadFile{"unclosed_paren", RuleWith("  condition: (proc.name = a and user.uid = 0"),
                "rules.yaml:3:45: expected ')' to close '(' opened at 3:14, found the end of the condition"},
        BadFile{"folded_multiline",
                "- rule: r\n  desc: d\n  condition: >\n    proc.name = a and\n    (user.uid = 0 or\n"
                "    user.uid = )\n  output: o\n  priority: warning\n",
                "rules.yaml:6:16: expected a value after '=', found ')'"},
        BadFile{"literal_block",
                "- rule: r\n  desc: d\n  condition: |\n    proc.name = a\n    and and\n  output: o\n"
                "  priority: warning\n",
                "rules.yaml:5:9: expected a field comparison, a macro, 'not' or '(', found 'and'"},
        BadFile{"plain_continuation",
                "- rule: r\n  desc: d\n  condition: proc.name = a\n    and proc.foo = b\n  output: o\n"
                "  priority: warning\n",
                "rules.yaml:4:9: unknown field 'proc.foo'"},
        BadFile{"undefined_macro", RuleWith("  condition: shell_procs and proc.name = x"),
                "rules.yaml:3:14: undefined macro 'shell_procs'"},
        BadFile{"list_used_as_macro",
                "- list: shells\n  items: [sh]\n" + RuleWith("  condition: shells"),
                "rules.yaml:5:14: 'shells' is a list, not a macro; use it as 'field in (shells)'"},
        BadFile{"unknown_field", RuleWith("  condition: proc.nme = x"),
                "rules.yaml:3:14: unknown field 'proc.nme'"},
        BadFile{"macro_list_unclosed", "- macro: m\n  condition: proc.name in (a, b\n",
                "rules.yaml:2:32: expected ',' or ')' to close '(' opened at 2:27, found the end of the condition"},
        BadFile{"macro_cycle",
                "- macro: a\n  condition: b\n- macro: b\n  condition: proc.name = x or a\n",
                "rules.yaml:2:14: macro 'b' refers to itself through b -> a"},
        BadFile{"unknown_event_type", RuleWith("  condition: evt.type = opne"),
                "rules.yaml:3:25: unknown event type 'opne'"},
        BadFile{"misspelt_operator", RuleWith("  condition: proc.name startwith x"),
                "rules.yaml:3:24: expected a comparison operator after field 'proc.name', found 'startwith'"},
        BadFile{"not_a_number", RuleWith("  condition: user.uid = abc"),
                "rules.yaml:3:25: 'user.uid =': 'abc' is not a number or a known constant"},
        BadFile{"quoted_trailing_or", RuleWith("  condition: \"proc.name = a or\""),
                "rules.yaml:3:31: expected a field comparison, a macro, 'not' or '(', found the end of the condition"},
        BadFile{"stray_paren", RuleWith("  condition: proc.name = a)"),
                "rules.yaml:3:27: unexpected ')' without a matching '('"},
        BadFile{"unterminated_string", RuleWith("  condition: proc.name = 'abc"),
                "rules.yaml:3:26: unterminated string: expected \"'\" to close it"},
        BadFile{"bad_symbol_operator", RuleWith("  condition: proc.name =! x"),
                "rules.yaml:3:24: unknown operator '=!'"},
        BadFile{"bad_priority",
                "- rule: r\n  desc: d\n  condition: proc.name = a\n  output: o\n  priority: urgent\n",
                "rules.yaml:5:13: rule 'r': unknown priority 'urgent'; expected emergency, alert, critical, "
                "error, warning, notice, informational or debug"},
        BadFile{"bad_action",
                "- rule: r\n  desc: d\n  condition: proc.name = a\n  output: o\n  priority: info\n  action: nuke\n",
                "rules.yaml:6:11: rule 'r': unknown action 'nuke'; expected alert, kill or quarantine"},
        BadFile{"missing_output", "- rule: r\n  desc: d\n  condition: proc.name = a\n  priority: info\n",
                "rules.yaml:1:3: rule 'r' needs 'output'"},
        BadFile{"append_to_missing_list", "- list: x\n  items: [a]\n  append: true\n",
                "rules.yaml:1:3: list 'x' is appended to but was never defined"},
        BadFile{"append_to_missing_rule", "- rule: x\n  condition: and a\n  append: true\n",
                "rules.yaml:1:3: rule 'x' is appended to but was never defined"},
        BadFile{"exception_tuple_size",
                "- rule: r\n  desc: d\n  condition: proc.name = a\n  output: o\n  priority: info\n"
                "  exceptions:\n    - name: e\n      fields: [proc.name, fd.name]\n      values:\n"
                "        - [a]\n",
                "rules.yaml:10:11: rule 'r' exception 'e': each value must be a list of 2 entries, one per field"},
        BadFile{"exception_unknown_field",
                "- rule: r\n  desc: d\n  condition: proc.name = a\n  output: o\n  priority: info\n"
                "  exceptions:\n    - name: e\n      fields: [proc.nam]\n      values:\n        - [a]\n",
                "rules.yaml:7:7: rule 'r' exception 'e': unknown field 'proc.nam'"},
        BadFile{"output_unknown_field",
                "- rule: r\n  desc: d\n  condition: proc.name = a\n  output: x %proc.nope\n  priority: info\n",
                "rules.yaml:1:3: rule 'r' output: unknown field 'proc.nope'"},
        BadFile{"not_a_list", "rule: r\n", "rules.yaml:1:1: a rule file must be a list of '- rule:', "
                                           "'- macro:' and '- list:' items"},
        BadFile{"empty_condition", RuleWith("  condition: \"\""), "rules.yaml:3:15: empty condition"}),
    [](const testing::TestParamInfo<BadFile>& info) { return std::string(info.param.name); });

TEST(RuleErrorsTest, InvalidYamlNamesFileAndLine) {
  absl::Status status = LoadAndCompile("- rule: r\n  desc: [unclosed\n");
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), testing::StartsWith("rules.yaml:"));
  EXPECT_THAT(std::string(status.message()), testing::HasSubstr("invalid YAML"));
}

TEST(RuleErrorsTest, ErrorsInAppendedConditionPointAtTheAppendingFile) {
  RuleSet set;
  ASSERT_TRUE(set.AddYaml("base.yaml", RuleWith("  condition: proc.name = a")).ok());
  ASSERT_TRUE(set.AddYaml("local.yaml", "- rule: r\n  condition: and proc.bad = 1\n  append: true\n").ok());
  absl::Status status = Engine::Compile(set).status();
  EXPECT_EQ(std::string(status.message()), "local.yaml:2:18: unknown field 'proc.bad'");
}

}  // namespace
}  // namespace kelpie::detect
