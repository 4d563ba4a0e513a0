#include "orchestrator/runtime/image/reference_index.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "orchestrator/runtime/image/digest.h"

namespace kelpie::image {
namespace {

constexpr int kFormatVersion = 1;

nlohmann::json ToJson(const ImageRecord& r) {
  return {{"reference", r.reference},   {"manifestDigest", r.manifest_digest},
          {"configDigest", r.config_digest}, {"layerDigests", r.layer_digests},
          {"diffIds", r.diff_ids},      {"size", r.size},
          {"created", r.created},       {"importedUnix", r.imported_unix}};
}

}  // namespace

absl::StatusOr<ReferenceIndex> ReferenceIndex::Load(const std::string& path) {
  ReferenceIndex index(path);
  if (!PathExists(path)) return index;
  KELPIE_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  auto bad = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("image index ", path, " is damaged: ", why));
  };
  if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
  if (doc.value("version", 0) != kFormatVersion) return bad("unknown format version");
  auto images = doc.find("images");
  if (images == doc.end() || !images->is_array()) return bad("no images array");
  try {
    for (const auto& j : *images) {
      ImageRecord r;
      r.reference = j.at("reference").get<std::string>();
      r.manifest_digest = j.at("manifestDigest").get<std::string>();
      r.config_digest = j.at("configDigest").get<std::string>();
      r.layer_digests = j.at("layerDigests").get<std::vector<std::string>>();
      r.diff_ids = j.at("diffIds").get<std::vector<std::string>>();
      r.size = j.at("size").get<uint64_t>();
      r.created = j.value("created", "");
      r.imported_unix = j.value("importedUnix", int64_t{0});
      for (const std::string* d : {&r.manifest_digest, &r.config_digest}) {
        if (!ValidateDigest(*d).ok()) return bad(absl::StrCat("bad digest for ", r.reference));
      }
      index.records_[r.reference] = std::move(r);
    }
  } catch (const nlohmann::json::exception& e) {
    return bad(e.what());
  }
  return index;
}

absl::Status ReferenceIndex::Save() const {
  nlohmann::json images = nlohmann::json::array();
  for (const auto& [ref, record] : records_) images.push_back(ToJson(record));
  nlohmann::json doc = {{"version", kFormatVersion}, {"images", images}};
  return WriteFileAtomically(path_, doc.dump(1), 0644);
}

std::optional<ImageRecord> ReferenceIndex::Find(absl::string_view reference) const {
  auto it = records_.find(reference);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

std::vector<ImageRecord> ReferenceIndex::All() const {
  std::vector<ImageRecord> out;
  for (const auto& [ref, record] : records_) out.push_back(record);
  return out;
}

absl::Status ReferenceIndex::Put(const ImageRecord& record) {
  auto previous = Find(record.reference);
  records_[record.reference] = record;
  absl::Status s = Save();
  if (!s.ok()) {  // keep memory and disk in agreement
    if (previous) {
      records_[record.reference] = *previous;
    } else {
      records_.erase(record.reference);
    }
  }
  return s;
}

absl::StatusOr<bool> ReferenceIndex::Remove(absl::string_view reference) {
  auto it = records_.find(reference);
  if (it == records_.end()) return false;
  ImageRecord previous = it->second;
  records_.erase(it);
  absl::Status s = Save();
  if (!s.ok()) {
    records_[previous.reference] = previous;
    return s;
  }
  return true;
}

std::set<std::string> ReferenceIndex::LiveBlobs() const {
  std::set<std::string> live;
  for (const auto& [ref, r] : records_) {
    live.insert(r.manifest_digest);
    live.insert(r.config_digest);
    live.insert(r.layer_digests.begin(), r.layer_digests.end());
  }
  return live;
}

std::set<std::string> ReferenceIndex::LiveDiffIds() const {
  std::set<std::string> live;
  for (const auto& [ref, r] : records_) live.insert(r.diff_ids.begin(), r.diff_ids.end());
  return live;
}

}  // namespace kelpie::image
