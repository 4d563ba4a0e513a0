#include "orchestrator/apiserver/rbac_authorizer.h"

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "orchestrator/api/selector.h"

namespace kelpie::apiserver {

using nlohmann::json;

namespace {

const char* const kPrefixes[] = {"/registry/clusterroles/", "/registry/clusterrolebindings/", "/registry/roles/",
                                 "/registry/rolebindings/"};

bool Has(const std::vector<std::string>& list, const std::string& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

std::vector<std::string> Strings(const json& obj, const char* key) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::string Str(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json& Meta(const json& obj) {
  static const json empty = json::object();
  auto it = obj.find("metadata");
  return it != obj.end() && it->is_object() ? *it : empty;
}

std::vector<PolicyRule> RulesFromJson(const json& obj) {
  std::vector<PolicyRule> rules;
  auto it = obj.find("rules");
  if (it == obj.end() || !it->is_array()) return rules;
  for (const auto& r : *it) {
    if (r.is_object()) rules.push_back(PolicyRuleFromJson(r));
  }
  return rules;
}

bool ResourceMatches(const PolicyRule& rule, const std::string& combined, const std::string& subresource) {
  for (const auto& r : rule.resources) {
    if (r == "*" || r == combined) return true;
    if (subresource.empty()) continue;
    if (r.size() == subresource.size() + 2 && absl::StartsWith(r, "*/") && absl::EndsWith(r, subresource)) return true;
  }
  return false;
}

bool NonResourceUrlMatches(const PolicyRule& rule, const std::string& path) {
  for (const auto& u : rule.non_resource_urls) {
    if (u == "*" || u == path) return true;
    if (!u.empty() && u.back() == '*' && absl::StartsWith(path, u.substr(0, u.size() - 1))) return true;
  }
  return false;
}

bool SubjectMatches(const RbacPolicy::Subject& s, const std::string& binding_namespace, const UserInfo& user) {
  if (s.kind == "User") return s.name == user.name;
  if (s.kind == "Group") return user.InGroup(s.name);
  if (s.kind == "ServiceAccount") {
    const std::string& ns = s.namespace_name.empty() ? binding_namespace : s.namespace_name;
    return !ns.empty() && ServiceAccountUserName(ns, s.name) == user.name;
  }
  return false;
}

std::string DescribeSubject(const RbacPolicy::Subject& s) {
  if (s.kind == "ServiceAccount") return absl::StrCat("ServiceAccount \"", s.name, "/", s.namespace_name, "\"");
  return absl::StrCat(s.kind, " \"", s.name, "\"");
}

}  // namespace

PolicyRule PolicyRuleFromJson(const json& rule) {
  PolicyRule r;
  r.verbs = Strings(rule, "verbs");
  r.api_groups = Strings(rule, "apiGroups");
  r.resources = Strings(rule, "resources");
  r.resource_names = Strings(rule, "resourceNames");
  r.non_resource_urls = Strings(rule, "nonResourceURLs");
  return r;
}

json PolicyRuleToJson(const PolicyRule& rule) {
  json j = {{"verbs", rule.verbs}};
  if (!rule.api_groups.empty()) j["apiGroups"] = rule.api_groups;
  if (!rule.resources.empty()) j["resources"] = rule.resources;
  if (!rule.resource_names.empty()) j["resourceNames"] = rule.resource_names;
  if (!rule.non_resource_urls.empty()) j["nonResourceURLs"] = rule.non_resource_urls;
  return j;
}

bool RuleAllows(const PolicyRule& rule, const AuthorizationAttributes& a) {
  if (!Has(rule.verbs, "*") && !Has(rule.verbs, a.verb)) return false;
  if (!a.resource_request) return NonResourceUrlMatches(rule, a.path);
  if (!Has(rule.api_groups, "*") && !Has(rule.api_groups, a.api_group)) return false;
  std::string combined = a.subresource.empty() ? a.resource : absl::StrCat(a.resource, "/", a.subresource);
  if (!ResourceMatches(rule, combined, a.subresource)) return false;
  if (rule.resource_names.empty()) return true;
  return !a.name.empty() && Has(rule.resource_names, a.name);
}

std::string ForbiddenMessage(const AuthorizationAttributes& a, const std::string& reason) {
  std::string msg;
  if (!a.resource_request) {
    msg = absl::StrCat("User \"", a.user.name, "\" cannot ", a.verb, " path \"", a.path, "\"");
    return reason.empty() ? msg : absl::StrCat(msg, ": ", reason);
  }
  std::string resource = a.subresource.empty() ? a.resource : absl::StrCat(a.resource, "/", a.subresource);
  std::string scope = a.namespace_name.empty() ? "at the cluster scope"
                                               : absl::StrCat("in the namespace \"", a.namespace_name, "\"");
  std::string qualified = a.api_group.empty() ? a.resource : absl::StrCat(a.resource, ".", a.api_group);
  std::string subject = a.name.empty() ? qualified : absl::StrCat(qualified, " \"", a.name, "\"");
  msg = absl::StrCat(subject, " is forbidden: User \"", a.user.name, "\" cannot ", a.verb, " resource \"", resource,
                     "\" in API group \"", a.api_group, "\" ", scope);
  return reason.empty() ? msg : absl::StrCat(msg, ": ", reason);
}

// ------------------------------------------------------------------ policy

std::shared_ptr<const RbacPolicy> RbacPolicy::Build(const std::vector<json>& objects) {
  std::vector<const json*> ptrs;
  ptrs.reserve(objects.size());
  for (const auto& o : objects) ptrs.push_back(&o);
  return Build(ptrs);
}

std::shared_ptr<const RbacPolicy> RbacPolicy::Build(const std::vector<const json*>& objects) {
  auto p = std::make_shared<RbacPolicy>();
  struct ClusterRoleSource {
    std::vector<PolicyRule> rules;
    json labels;
    std::vector<api::LabelSelector> aggregation;
    bool aggregated = false;
  };
  std::map<std::string, ClusterRoleSource> sources;
  for (const json* op : objects) {
    if (op == nullptr || !op->is_object()) continue;
    const json& o = *op;
    const std::string kind = Str(o, "kind");
    const json& meta = Meta(o);
    const std::string name = Str(meta, "name");
    const std::string ns = Str(meta, "namespace");
    if (name.empty()) continue;
    if (kind == "ClusterRole") {
      ClusterRoleSource src;
      src.rules = RulesFromJson(o);
      src.labels = meta.contains("labels") ? meta["labels"] : json::object();
      auto agg = o.find("aggregationRule");
      if (agg != o.end() && agg->is_object()) {
        src.aggregated = true;
        auto sels = agg->find("clusterRoleSelectors");
        if (sels != agg->end() && sels->is_array()) {
          for (const auto& s : *sels) {
            auto sel = api::LabelSelector::FromJson(s);
            // An empty selector would select every role; Kubernetes' API
            // validation forbids a selector that does not parse, so skip it.
            if (sel.ok() && !sel->Empty()) src.aggregation.push_back(std::move(*sel));
          }
        }
      }
      sources[name] = std::move(src);
    } else if (kind == "Role") {
      p->roles_[absl::StrCat(ns, "/", name)] = RulesFromJson(o);
    } else if (kind == "RoleBinding" || kind == "ClusterRoleBinding") {
      Binding b;
      b.kind = kind;
      b.namespace_name = kind == "RoleBinding" ? ns : "";
      b.name = name;
      auto ref = o.find("roleRef");
      if (ref == o.end() || !ref->is_object()) continue;
      b.role_kind = Str(*ref, "kind");
      b.role_name = Str(*ref, "name");
      auto subjects = o.find("subjects");
      if (subjects != o.end() && subjects->is_array()) {
        for (const auto& s : *subjects) {
          if (!s.is_object()) continue;
          b.subjects.push_back({Str(s, "kind"), Str(s, "name"), Str(s, "namespace")});
        }
      }
      if (kind == "RoleBinding") {
        if (b.namespace_name.empty()) continue;
        p->role_bindings_[b.namespace_name].push_back(std::move(b));
      } else {
        p->cluster_role_bindings_.push_back(std::move(b));
      }
    }
  }
  // Effective rules: an aggregated role gets the (effective) rules of every
  // other role its selectors match; cycles end at roles already on the path.
  std::function<std::vector<PolicyRule>(const std::string&, std::set<std::string>&)> effective =
      [&](const std::string& name, std::set<std::string>& path) -> std::vector<PolicyRule> {
    auto done = p->cluster_roles_.find(name);
    if (done != p->cluster_roles_.end()) return done->second;
    const ClusterRoleSource& src = sources[name];
    if (!src.aggregated) return src.rules;
    path.insert(name);
    std::vector<PolicyRule> rules;
    for (const auto& [other, other_src] : sources) {
      if (other == name || path.count(other) > 0) continue;
      bool selected = std::any_of(src.aggregation.begin(), src.aggregation.end(),
                                  [&](const api::LabelSelector& s) { return s.Matches(other_src.labels); });
      if (!selected) continue;
      for (auto& r : effective(other, path)) rules.push_back(std::move(r));
    }
    path.erase(name);
    return rules;
  };
  for (const auto& [name, src] : sources) {
    std::set<std::string> path;
    auto rules = effective(name, path);
    p->cluster_roles_[name] = std::move(rules);
  }
  return p;
}

const std::vector<PolicyRule>* RbacPolicy::ClusterRoleRules(const std::string& name) const {
  auto it = cluster_roles_.find(name);
  return it == cluster_roles_.end() ? nullptr : &it->second;
}

const std::vector<PolicyRule>* RbacPolicy::RulesOf(const Binding& b, std::vector<std::string>* errors) const {
  if (b.role_kind == "ClusterRole") {
    if (const auto* r = ClusterRoleRules(b.role_name)) return r;
    errors->push_back(absl::StrCat("clusterrole.rbac.authorization.k8s.io \"", b.role_name, "\" not found"));
    return nullptr;
  }
  if (b.role_kind == "Role" && b.kind == "RoleBinding") {
    auto it = roles_.find(absl::StrCat(b.namespace_name, "/", b.role_name));
    if (it != roles_.end()) return &it->second;
    errors->push_back(absl::StrCat("role.rbac.authorization.k8s.io \"", b.role_name, "\" not found"));
    return nullptr;
  }
  errors->push_back(absl::StrCat(b.kind, " \"", b.name, "\" refers to an unknown role kind \"", b.role_kind, "\""));
  return nullptr;
}

template <typename Visit>
void RbacPolicy::VisitRules(const UserInfo& user, const std::string& namespace_name, std::vector<std::string>* errors,
                            Visit visit) const {
  auto visit_bindings = [&](const std::vector<Binding>& bindings) {
    for (const auto& b : bindings) {
      const Subject* matched = nullptr;
      for (const auto& s : b.subjects) {
        if (SubjectMatches(s, b.namespace_name, user)) {
          matched = &s;
          break;
        }
      }
      if (matched == nullptr) continue;
      const std::vector<PolicyRule>* rules = RulesOf(b, errors);
      if (rules == nullptr) continue;
      for (const auto& r : *rules) {
        if (!visit(b, *matched, r)) return false;
      }
    }
    return true;
  };
  if (!visit_bindings(cluster_role_bindings_)) return;
  if (namespace_name.empty()) return;
  auto it = role_bindings_.find(namespace_name);
  if (it != role_bindings_.end()) visit_bindings(it->second);
}

AuthorizationDecision RbacPolicy::Authorize(const AuthorizationAttributes& a) const {
  AuthorizationDecision d;
  std::vector<std::string> errors;
  VisitRules(a.user, a.resource_request ? a.namespace_name : "", &errors,
             [&](const Binding& b, const Subject& s, const PolicyRule& r) {
               if (!RuleAllows(r, a)) return true;
               d.allowed = true;
               d.reason = absl::StrCat("RBAC: allowed by ", b.kind, " \"", b.name,
                                       b.namespace_name.empty() ? "" : "/" + b.namespace_name, "\" of ", b.role_kind,
                                       " \"", b.role_name, "\" to ", DescribeSubject(s));
               return false;
             });
  if (!d.allowed && !errors.empty()) d.reason = absl::StrCat("RBAC: [", absl::StrJoin(errors, ", "), "]");
  return d;
}

SubjectRules RbacPolicy::RulesFor(const UserInfo& user, const std::string& namespace_name) const {
  SubjectRules out;
  VisitRules(user, namespace_name, &out.errors, [&](const Binding&, const Subject&, const PolicyRule& r) {
    if (!r.non_resource_urls.empty()) {
      PolicyRule nr;
      nr.verbs = r.verbs;
      nr.non_resource_urls = r.non_resource_urls;
      out.non_resource_rules.push_back(std::move(nr));
    }
    if (!r.resources.empty()) {
      PolicyRule rr = r;
      rr.non_resource_urls.clear();
      out.resource_rules.push_back(std::move(rr));
    }
    return true;
  });
  return out;
}

// -------------------------------------------------------------- authorizer

RbacAuthorizer::RbacAuthorizer(std::shared_ptr<const RbacPolicy> policy) : policy_(std::move(policy)) {}

absl::StatusOr<std::unique_ptr<RbacAuthorizer>> RbacAuthorizer::Start(store::Store& store) {
  auto a = std::unique_ptr<RbacAuthorizer>(new RbacAuthorizer());
  a->store_ = &store;
  absl::Status s = a->ListAndWatch();
  if (!s.ok()) return s;
  a->worker_ = std::thread([p = a.get()] { p->Run(); });
  return a;
}

RbacAuthorizer::~RbacAuthorizer() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  for (auto& w : watches_) w->Cancel();
  watches_.clear();
}

std::shared_ptr<const RbacPolicy> RbacAuthorizer::policy() const {
  std::lock_guard<std::mutex> lock(policy_mu_);
  return policy_;
}

AuthorizationDecision RbacAuthorizer::Authorize(const AuthorizationAttributes& a) const {
  if (a.user.InGroup(kSystemMasters)) return {true, ""};
  auto p = policy();
  if (!p) return {false, "RBAC: the policy has not been loaded"};
  return p->Authorize(a);
}

SubjectRules RbacAuthorizer::RulesFor(const UserInfo& user, const std::string& namespace_name) const {
  auto p = policy();
  if (!p) return {};
  return p->RulesFor(user, namespace_name);
}

absl::Status RbacAuthorizer::ListAndWatch() {
  for (auto& w : watches_) w->Cancel();
  watches_.clear();
  objects_.clear();
  // One consistent snapshot of the four kinds, then a watch per kind from
  // the revision after it.
  int64_t revision = 0;
  for (const char* prefix : kPrefixes) {
    store::RangeOptions ro;
    ro.revision = revision;
    auto r = store_->Range(prefix, ro);
    if (!r.ok()) return r.status();
    revision = r->revision;
    for (const auto& kv : r->kvs) {
      json obj = json::parse(kv.value_view(), nullptr, false);
      if (!obj.is_discarded()) objects_[kv.key] = std::make_shared<const json>(std::move(obj));
    }
  }
  for (const char* prefix : kPrefixes) {
    store::WatchOptions wo;
    wo.prefix = prefix;
    wo.start_revision = revision + 1;
    wo.prev_kv = false;
    store::WatchConsumer consumer;
    consumer.on_events = [this](store::WatchBatch batch) {
      if (batch.events.empty()) return;
      {
        std::lock_guard<std::mutex> lock(queue_mu_);
        batches_.push_back(std::move(batch));
      }
      queue_cv_.notify_one();
    };
    consumer.on_close = [this](absl::Status status) {
      spdlog::warn("RBAC: watch of the policy ended ({}); listing again", status.message());
      {
        std::lock_guard<std::mutex> lock(queue_mu_);
        resync_ = true;
      }
      queue_cv_.notify_one();
    };
    auto w = store_->Watch(wo, std::move(consumer));
    if (!w.ok()) return w.status();
    watches_.push_back(std::move(*w));
  }
  revision_ = revision;
  Publish();
  return absl::OkStatus();
}

void RbacAuthorizer::Publish() {
  std::vector<const json*> objects;
  objects.reserve(objects_.size());
  for (const auto& [key, obj] : objects_) objects.push_back(obj.get());
  auto p = RbacPolicy::Build(objects);
  std::lock_guard<std::mutex> lock(policy_mu_);
  policy_ = std::move(p);
}

void RbacAuthorizer::Run() {
  std::unique_lock<std::mutex> lock(queue_mu_);
  while (true) {
    queue_cv_.wait(lock, [this] { return stopping_ || resync_ || !batches_.empty(); });
    if (stopping_) return;
    if (resync_) {
      resync_ = false;
      batches_.clear();
      lock.unlock();
      absl::Status s = ListAndWatch();
      lock.lock();
      if (!s.ok()) {
        spdlog::warn("RBAC: listing the policy failed ({}); retrying", s.message());
        resync_ = true;
        queue_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
      }
      continue;
    }
    // Apply everything queued, then build one new policy.
    std::deque<store::WatchBatch> batches;
    batches.swap(batches_);
    lock.unlock();
    int64_t revision = revision_.load();
    for (auto& batch : batches) {
      for (auto& ev : batch.events) {
        revision = std::max(revision, ev.kv.mod_revision);
        if (ev.type == store::Event::Type::kDelete) {
          objects_.erase(ev.kv.key);
          continue;
        }
        json obj = json::parse(ev.kv.value_view(), nullptr, false);
        if (obj.is_discarded()) continue;
        objects_[ev.kv.key] = std::make_shared<const json>(std::move(obj));
      }
    }
    Publish();
    revision_ = revision;
    lock.lock();
  }
}

}  // namespace kelpie::apiserver
