// Thread-safe in-memory cache of API objects keyed "namespace/name" (or
// "name" for cluster-scoped objects), with optional secondary indexes
// (e.g. pods by spec.nodeName). Filled by an Informer; read by controllers.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kelpie::controllers {

// "ns/name", or "name" when the object has no namespace.
std::string ObjectKey(const nlohmann::json& obj);
std::string ObjectKey(const std::string& ns, const std::string& name);

// Index values of an object (empty: not indexed).
using IndexFunc = std::function<std::vector<std::string>(const nlohmann::json&)>;

// Index function for pods by spec.nodeName.
std::vector<std::string> PodNodeNameIndex(const nlohmann::json& pod);
// Index function by metadata.namespace.
std::vector<std::string> NamespaceIndex(const nlohmann::json& obj);

class ObjectStore {
 public:
  // Register before the store is filled.
  void AddIndexer(const std::string& name, IndexFunc fn);

  // Returns the previous object, if any.
  std::optional<nlohmann::json> Upsert(const nlohmann::json& obj);
  std::optional<nlohmann::json> Remove(const std::string& key);

  std::optional<nlohmann::json> Get(const std::string& key) const;
  std::vector<nlohmann::json> List() const;
  std::vector<std::string> ListKeys() const;
  std::vector<nlohmann::json> ByIndex(const std::string& index, const std::string& value) const;
  size_t Size() const;

 private:
  void IndexLocked(const std::string& key, const nlohmann::json& obj, bool add);

  mutable std::mutex mu_;
  std::map<std::string, nlohmann::json> items_;
  std::map<std::string, IndexFunc> index_funcs_;
  // index name -> value -> keys
  std::map<std::string, std::map<std::string, std::set<std::string>>> indexes_;
};

}  // namespace kelpie::controllers
