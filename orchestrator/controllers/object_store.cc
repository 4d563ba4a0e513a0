#include "orchestrator/controllers/object_store.h"

namespace kelpie::controllers {

using nlohmann::json;

std::string ObjectKey(const std::string& ns, const std::string& name) { return ns.empty() ? name : ns + "/" + name; }

std::string ObjectKey(const json& obj) {
  if (!obj.is_object() || !obj.contains("metadata") || !obj["metadata"].is_object()) return "";
  const json& m = obj["metadata"];
  return ObjectKey(m.value("namespace", ""), m.value("name", ""));
}

std::vector<std::string> PodNodeNameIndex(const json& pod) {
  if (!pod.contains("spec") || !pod["spec"].is_object()) return {};
  std::string node = pod["spec"].value("nodeName", "");
  if (node.empty()) return {};
  return {node};
}

std::vector<std::string> NamespaceIndex(const json& obj) {
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) return {};
  std::string ns = obj["metadata"].value("namespace", "");
  if (ns.empty()) return {};
  return {ns};
}

void ObjectStore::AddIndexer(const std::string& name, IndexFunc fn) {
  std::lock_guard<std::mutex> lock(mu_);
  index_funcs_[name] = std::move(fn);
  for (const auto& [key, obj] : items_) {
    for (const auto& v : index_funcs_[name](obj)) indexes_[name][v].insert(key);
  }
}

void ObjectStore::IndexLocked(const std::string& key, const json& obj, bool add) {
  for (const auto& [name, fn] : index_funcs_) {
    auto& index = indexes_[name];
    for (const auto& v : fn(obj)) {
      if (add) {
        index[v].insert(key);
      } else {
        auto it = index.find(v);
        if (it == index.end()) continue;
        it->second.erase(key);
        if (it->second.empty()) index.erase(it);
      }
    }
  }
}

std::optional<json> ObjectStore::Upsert(const json& obj) {
  std::string key = ObjectKey(obj);
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<json> old;
  auto it = items_.find(key);
  if (it != items_.end()) {
    old = std::move(it->second);
    IndexLocked(key, *old, false);
    it->second = obj;
  } else {
    items_.emplace(key, obj);
  }
  IndexLocked(key, obj, true);
  return old;
}

std::optional<json> ObjectStore::Remove(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = items_.find(key);
  if (it == items_.end()) return std::nullopt;
  json old = std::move(it->second);
  items_.erase(it);
  IndexLocked(key, old, false);
  return old;
}

std::optional<json> ObjectStore::Get(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = items_.find(key);
  if (it == items_.end()) return std::nullopt;
  return it->second;
}

std::vector<json> ObjectStore::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<json> out;
  out.reserve(items_.size());
  for (const auto& [k, v] : items_) out.push_back(v);
  return out;
}

std::vector<std::string> ObjectStore::ListKeys() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [k, v] : items_) out.push_back(k);
  return out;
}

std::vector<json> ObjectStore::ByIndex(const std::string& index, const std::string& value) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<json> out;
  auto idx = indexes_.find(index);
  if (idx == indexes_.end()) return out;
  auto it = idx->second.find(value);
  if (it == idx->second.end()) return out;
  for (const auto& key : it->second) out.push_back(items_.at(key));
  return out;
}

size_t ObjectStore::Size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return items_.size();
}

}  // namespace kelpie::controllers
