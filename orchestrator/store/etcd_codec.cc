#include "orchestrator/store/etcd_codec.h"

#include "absl/strings/str_cat.h"

namespace kelpie::store {

KeyValue FromEtcd(const mvccpb::KeyValue& kv) {
  KeyValue out;
  out.key = kv.key();
  out.value = std::make_shared<const std::string>(kv.value());
  out.create_revision = kv.create_revision();
  out.mod_revision = kv.mod_revision();
  out.version = kv.version();
  out.lease = kv.lease();
  return out;
}

Event FromEtcd(const mvccpb::Event& event) {
  Event out;
  out.type = event.type() == mvccpb::Event::DELETE ? Event::Type::kDelete : Event::Type::kPut;
  out.kv = FromEtcd(event.kv());
  if (event.has_prev_kv()) out.prev_kv = FromEtcd(event.prev_kv());
  return out;
}

namespace {

etcdserverpb::Compare::CompareResult ToEtcd(Compare::Result r) {
  switch (r) {
    case Compare::Result::kEqual: return etcdserverpb::Compare::EQUAL;
    case Compare::Result::kNotEqual: return etcdserverpb::Compare::NOT_EQUAL;
    case Compare::Result::kLess: return etcdserverpb::Compare::LESS;
    case Compare::Result::kGreater: return etcdserverpb::Compare::GREATER;
  }
  return etcdserverpb::Compare::EQUAL;
}

void AddOps(const std::vector<Op>& ops,
            google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>* out) {
  for (const Op& op : ops) {
    etcdserverpb::RequestOp* r = out->Add();
    switch (op.type) {
      case Op::Type::kPut: {
        auto* put = r->mutable_request_put();
        put->set_key(op.key);
        put->set_value(op.value);
        put->set_lease(op.lease);
        put->set_prev_kv(true);
        break;
      }
      case Op::Type::kDelete: {
        auto* del = r->mutable_request_delete_range();
        del->set_key(op.key);
        del->set_prev_kv(true);
        break;
      }
      case Op::Type::kGet:
        r->mutable_request_range()->set_key(op.key);
        break;
    }
  }
}

}  // namespace

etcdserverpb::TxnRequest ToEtcd(const TxnRequest& request) {
  etcdserverpb::TxnRequest out;
  for (const Compare& c : request.compares) {
    etcdserverpb::Compare* cmp = out.add_compare();
    cmp->set_key(c.key);
    cmp->set_result(ToEtcd(c.result));
    switch (c.target) {
      case Compare::Target::kModRevision:
        cmp->set_target(etcdserverpb::Compare::MOD);
        cmp->set_mod_revision(c.value);
        break;
      case Compare::Target::kCreateRevision:
        cmp->set_target(etcdserverpb::Compare::CREATE);
        cmp->set_create_revision(c.value);
        break;
      case Compare::Target::kVersion:
        cmp->set_target(etcdserverpb::Compare::VERSION);
        cmp->set_version(c.value);
        break;
    }
  }
  AddOps(request.success, out.mutable_success());
  AddOps(request.failure, out.mutable_failure());
  return out;
}

TxnResult FromEtcd(const TxnRequest& request, const etcdserverpb::TxnResponse& response) {
  TxnResult result;
  result.succeeded = response.succeeded();
  result.revision = response.header().revision();
  const std::vector<Op>& ops = result.succeeded ? request.success : request.failure;
  for (int i = 0; i < response.responses_size() && i < static_cast<int>(ops.size()); ++i) {
    const Op& op = ops[static_cast<size_t>(i)];
    const etcdserverpb::ResponseOp& r = response.responses(i);
    OpResult out;
    switch (op.type) {
      case Op::Type::kPut: {
        const auto& put = r.response_put();
        if (put.has_prev_kv()) out.prev_kv = FromEtcd(put.prev_kv());
        // etcd answers a put with the previous key only; the new one
        // follows from it and the transaction's revision.
        KeyValue kv;
        kv.key = op.key;
        kv.value = std::make_shared<const std::string>(op.value);
        kv.mod_revision = result.revision;
        kv.create_revision = out.prev_kv ? out.prev_kv->create_revision : result.revision;
        kv.version = out.prev_kv ? out.prev_kv->version + 1 : 1;
        kv.lease = op.lease;
        out.kv = std::move(kv);
        break;
      }
      case Op::Type::kDelete: {
        const auto& del = r.response_delete_range();
        if (del.prev_kvs_size() > 0) out.prev_kv = FromEtcd(del.prev_kvs(0));
        break;
      }
      case Op::Type::kGet: {
        const auto& range = r.response_range();
        if (range.kvs_size() > 0) out.kv = FromEtcd(range.kvs(0));
        break;
      }
    }
    result.results.push_back(std::move(out));
  }
  return result;
}

absl::Status FromGrpc(const grpc::Status& status, const std::string& endpoint) {
  if (status.ok()) return absl::OkStatus();
  const std::string& message = status.error_message();
  std::string where = absl::StrCat("etcd ", endpoint, ": ", message);
  if (message.find("required revision has been compacted") != std::string::npos) {
    return absl::OutOfRangeError(absl::StrCat(std::string(kCompactedMessage), " (", where, ")"));
  }
  if (message.find("future revision") != std::string::npos ||
      message.find("request is too large") != std::string::npos) {
    return absl::InvalidArgumentError(where);
  }
  if (message.find("lease not found") != std::string::npos) return absl::NotFoundError(where);
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), where);
}

}  // namespace kelpie::store
