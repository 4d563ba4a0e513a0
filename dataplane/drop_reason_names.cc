#include "dataplane/drop_reason_names.h"

#include <bpf/btf.h>

#include <cerrno>
#include <memory>

#include "absl/strings/str_cat.h"
#include "dataplane/libbpf_errors.h"

namespace kelpie::dataplane {

absl::StatusOr<DropReasonNames> DropReasonNames::FromKernelBtf(const std::string& btf_path) {
  InstallLibbpfLogging();
  ClearLibbpfMessages();
  std::unique_ptr<struct btf, void (*)(struct btf*)> btf(btf__parse(btf_path.c_str(), nullptr), btf__free);
  if (!btf) return LibbpfError(absl::StrCat("reading BTF ", btf_path), -errno);
  int id = btf__find_by_name_kind(btf.get(), "skb_drop_reason", BTF_KIND_ENUM);
  if (id < 0) return absl::NotFoundError(absl::StrCat("enum skb_drop_reason is not in ", btf_path));
  const struct btf_type* t = btf__type_by_id(btf.get(), static_cast<__u32>(id));
  const struct btf_enum* e = btf_enum(t);
  static constexpr std::string_view kPrefix = "SKB_DROP_REASON_";
  std::map<uint32_t, std::string> names;
  for (int i = 0; i < btf_vlen(t); ++i, ++e) {
    std::string name = btf__name_by_offset(btf.get(), e->name_off);
    if (name.rfind(kPrefix, 0) == 0) name = name.substr(kPrefix.size());
    // SKB_DROP_REASON_MAX and the subsystem mask are markers, not reasons.
    if (name == "MAX" || name.find("SUBSYS") != std::string::npos) continue;
    names.emplace(static_cast<uint32_t>(e->val), std::move(name));
  }
  return DropReasonNames(std::move(names));
}

std::string DropReasonNames::Name(uint32_t reason) const {
  auto it = names_.find(reason);
  if (it != names_.end()) return it->second;
  return absl::StrCat("reason_", reason);
}

}  // namespace kelpie::dataplane
