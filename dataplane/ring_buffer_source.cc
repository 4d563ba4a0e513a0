#include "dataplane/ring_buffer_source.h"

#include <bpf/libbpf.h>

#include "dataplane/libbpf_errors.h"

namespace kelpie::dataplane {

absl::StatusOr<std::unique_ptr<RingBufferSource>> RingBufferSource::Create(int map_fd, EventCallback callback) {
  InstallLibbpfLogging();
  ClearLibbpfMessages();
  std::unique_ptr<RingBufferSource> src(new RingBufferSource(std::move(callback)));
  src->rb_ = ring_buffer__new(map_fd, &RingBufferSource::OnRecord, src.get(), nullptr);
  if (src->rb_ == nullptr) return LibbpfError("creating ring buffer reader", -errno);
  return src;
}

RingBufferSource::~RingBufferSource() {
  if (rb_ != nullptr) ring_buffer__free(rb_);
}

int RingBufferSource::OnRecord(void* ctx, void* data, size_t size) {
  auto* self = static_cast<RingBufferSource*>(ctx);
  // A non-zero return stops ring_buffer__poll's current round.
  return self->callback_(std::string_view(static_cast<const char*>(data), size)) ? 0 : 1;
}

absl::StatusOr<int> RingBufferSource::Poll(std::chrono::milliseconds timeout) {
  int n = ring_buffer__poll(rb_, static_cast<int>(timeout.count()));
  if (n == -EINTR) return 0;
  if (n < 0) return LibbpfError("polling ring buffer", n);
  // Producers may submit without waking readers: drain what is ready.
  if (n == 0) n = ring_buffer__consume(rb_);
  if (n < 0) return LibbpfError("consuming ring buffer", n);
  return n;
}

}  // namespace kelpie::dataplane
