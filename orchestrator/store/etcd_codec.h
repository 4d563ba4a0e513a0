// Conversions between the Store types and etcd's protobuf messages, and
// between gRPC statuses from etcd and the Store's documented error codes.
// Internal to the etcd backend (pulls in generated protobuf headers).
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"
#include "orchestrator/store/store.h"
#include "proto/etcd/etcdserverpb/rpc.pb.h"

namespace kelpie::store {

KeyValue FromEtcd(const mvccpb::KeyValue& kv);
Event FromEtcd(const mvccpb::Event& event);
etcdserverpb::TxnRequest ToEtcd(const TxnRequest& request);
// `response` answers `request` (the branch that ran is chosen by succeeded).
TxnResult FromEtcd(const TxnRequest& request, const etcdserverpb::TxnResponse& response);

// Maps an etcd error to the Store's codes: compacted -> kOutOfRange with
// kCompactedMessage, future revision and too-large requests ->
// kInvalidArgument, missing lease -> kNotFound; others keep their gRPC code.
absl::Status FromGrpc(const grpc::Status& status, const std::string& endpoint);

}  // namespace kelpie::store
