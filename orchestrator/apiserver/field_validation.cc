#include "orchestrator/apiserver/field_validation.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "orchestrator/api/schema/schema.h"
#include "orchestrator/api/schema/schema_validation.h"

namespace kelpie::apiserver {
namespace {

class WarningResponder : public http::HttpResponder {
 public:
  WarningResponder(std::shared_ptr<http::HttpResponder> inner, std::vector<std::string> warnings)
      : inner_(std::move(inner)), warnings_(std::move(warnings)) {}

  void Respond(http::HttpResponse response) override {
    for (const auto& w : warnings_) response.headers.emplace_back("Warning", Header(w));
    inner_->Respond(std::move(response));
  }
  void StartStream(int status, http::HeaderList headers) override {
    for (const auto& w : warnings_) headers.emplace_back("Warning", Header(w));
    inner_->StartStream(status, std::move(headers));
  }
  bool WriteChunk(std::string data) override { return inner_->WriteChunk(std::move(data)); }
  void EndStream() override { inner_->EndStream(); }
  void OnAbort(std::function<void()> callback) override { inner_->OnAbort(std::move(callback)); }

 private:
  // RFC 7234 warning value: code, agent "-", quoted text.
  static std::string Header(const std::string& text) {
    std::string quoted;
    for (char c : text) {
      if (c == '"' || c == '\\') quoted.push_back('\\');
      quoted.push_back(c);
    }
    return absl::StrCat("299 - \"", quoted, "\"");
  }

  std::shared_ptr<http::HttpResponder> inner_;
  std::vector<std::string> warnings_;
};

}  // namespace

std::optional<FieldValidation> ParseFieldValidation(const std::string& value) {
  if (value.empty() || value == "Warn") return FieldValidation::kWarn;
  if (value == "Strict") return FieldValidation::kStrict;
  if (value == "Ignore") return FieldValidation::kIgnore;
  return std::nullopt;
}

std::optional<api::ApiError> CheckUnknownFields(FieldValidation mode, const std::string& group,
                                                const std::string& version, const std::string& kind,
                                                nlohmann::json& object, std::vector<std::string>* warnings) {
  const auto& schema = api::schema::Schema::Builtin();
  const api::schema::TypeDef* root = schema.RootType(group, version, kind);
  if (!root) return std::nullopt;
  auto unknown = api::schema::FindUnknownFields(schema, *root, object, /*drop=*/mode != FieldValidation::kStrict);
  if (unknown.empty()) return std::nullopt;
  std::sort(unknown.begin(), unknown.end());
  std::vector<std::string> messages;
  for (const auto& path : unknown) messages.push_back(absl::StrCat("unknown field \"", path, "\""));
  if (mode == FieldValidation::kStrict) {
    return api::BadRequest(absl::StrCat(kind, " in version \"", version, "\" cannot be handled as a ", kind,
                                        ": strict decoding error: ", absl::StrJoin(messages, ", ")));
  }
  if (mode == FieldValidation::kWarn && warnings) {
    warnings->insert(warnings->end(), messages.begin(), messages.end());
  }
  return std::nullopt;
}

std::shared_ptr<http::HttpResponder> WithWarnings(std::shared_ptr<http::HttpResponder> inner,
                                                  std::vector<std::string> warnings) {
  if (warnings.empty()) return inner;
  return std::make_shared<WarningResponder>(std::move(inner), std::move(warnings));
}

}  // namespace kelpie::apiserver
