#include "orchestrator/kubelet/server/spdy.h"

#include <zlib.h>

#include "absl/strings/str_cat.h"

namespace kelpie::kubelet {
namespace {

void PutU32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>((v >> 16) & 0xFF));
  out.push_back(static_cast<char>((v >> 8) & 0xFF));
  out.push_back(static_cast<char>(v & 0xFF));
}

uint32_t GetU32(std::string_view s, size_t at) {
  return (uint32_t{static_cast<uint8_t>(s[at])} << 24) | (uint32_t{static_cast<uint8_t>(s[at + 1])} << 16) |
         (uint32_t{static_cast<uint8_t>(s[at + 2])} << 8) | uint32_t{static_cast<uint8_t>(s[at + 3])};
}

std::string FrameHeader(uint32_t first_word, uint8_t flags, size_t length) {
  std::string out;
  PutU32(out, first_word);
  PutU32(out, (uint32_t{flags} << 24) | static_cast<uint32_t>(length & 0xFFFFFF));
  return out;
}

}  // namespace

const std::string& SpdyDictionary() {
  // SPDY/3 section 2.6.10.1: length-prefixed header names and values, then
  // common value fragments.
  static const std::string dictionary = [] {
    static const char* const kWords[] = {
        "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
        "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
        "content-base", "content-encoding", "content-language", "content-length", "content-location",
        "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
        "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
        "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
        "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via",
        "warning", "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
        "public", "set-cookie", "keep-alive", "origin"};
    std::string d;
    for (const char* w : kWords) {
      PutU32(d, static_cast<uint32_t>(std::string_view(w).size()));
      d += w;
    }
    d +=
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
        "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
        "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, "
        "Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,"
        "application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch"
        "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
    return d;
  }();
  return dictionary;
}

absl::Status SpdyFrameDecoder::Feed(std::string_view data) {
  buffer_.append(data);
  size_t pos = 0;
  while (buffer_.size() - pos >= 8) {
    uint32_t w0 = GetU32(buffer_, pos);
    uint32_t w1 = GetU32(buffer_, pos + 4);
    size_t length = w1 & 0xFFFFFF;
    if (buffer_.size() - pos < 8 + length) break;
    auto f = std::make_unique<SpdyFrame>();
    f->flags = static_cast<uint8_t>(w1 >> 24);
    f->payload.assign(buffer_, pos + 8, length);
    if (w0 & 0x80000000u) {
      f->control = true;
      uint16_t version = static_cast<uint16_t>((w0 >> 16) & 0x7FFF);
      if (version != 3) return absl::InvalidArgumentError(absl::StrCat("SPDY version ", version, " is not supported"));
      f->type = static_cast<SpdyType>(w0 & 0xFFFF);
      bool has_stream = f->type == SpdyType::kSynStream || f->type == SpdyType::kSynReply ||
                        f->type == SpdyType::kRstStream || f->type == SpdyType::kHeaders ||
                        f->type == SpdyType::kWindowUpdate;
      if (has_stream) {
        if (f->payload.size() < 4) return absl::InvalidArgumentError("SPDY control frame too short");
        f->stream_id = GetU32(f->payload, 0) & 0x7FFFFFFF;
      }
    } else {
      f->stream_id = w0 & 0x7FFFFFFF;
    }
    frames_.push_back(std::move(f));
    pos += 8 + length;
  }
  buffer_.erase(0, pos);
  return absl::OkStatus();
}

std::unique_ptr<SpdyFrame> SpdyFrameDecoder::Next() {
  if (frames_.empty()) return nullptr;
  auto f = std::move(frames_.front());
  frames_.pop_front();
  return f;
}

struct SpdyHeaderCompressor::State {
  z_stream z{};
};

SpdyHeaderCompressor::SpdyHeaderCompressor() : state_(std::make_unique<State>()) {
  deflateInit(&state_->z, Z_DEFAULT_COMPRESSION);
  const std::string& d = SpdyDictionary();
  deflateSetDictionary(&state_->z, reinterpret_cast<const Bytef*>(d.data()), static_cast<uInt>(d.size()));
}

SpdyHeaderCompressor::~SpdyHeaderCompressor() { deflateEnd(&state_->z); }

std::string SpdyHeaderCompressor::Compress(const SpdyHeaders& headers) {
  std::string raw;
  PutU32(raw, static_cast<uint32_t>(headers.size()));
  for (const auto& [k, v] : headers) {
    PutU32(raw, static_cast<uint32_t>(k.size()));
    raw += k;
    PutU32(raw, static_cast<uint32_t>(v.size()));
    raw += v;
  }
  std::string out;
  z_stream& z = state_->z;
  z.next_in = reinterpret_cast<Bytef*>(raw.data());
  z.avail_in = static_cast<uInt>(raw.size());
  char buf[4096];
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    deflate(&z, Z_SYNC_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
  } while (z.avail_out == 0);
  return out;
}

struct SpdyHeaderDecompressor::State {
  z_stream z{};
};

SpdyHeaderDecompressor::SpdyHeaderDecompressor() : state_(std::make_unique<State>()) { inflateInit(&state_->z); }

SpdyHeaderDecompressor::~SpdyHeaderDecompressor() { inflateEnd(&state_->z); }

absl::StatusOr<SpdyHeaders> SpdyHeaderDecompressor::Decompress(std::string_view block) {
  std::string raw;
  z_stream& z = state_->z;
  std::string in(block);
  z.next_in = reinterpret_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  char buf[4096];
  while (z.avail_in > 0) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    int rc = inflate(&z, Z_SYNC_FLUSH);
    if (rc == Z_NEED_DICT) {
      const std::string& d = SpdyDictionary();
      if (inflateSetDictionary(&z, reinterpret_cast<const Bytef*>(d.data()), static_cast<uInt>(d.size())) != Z_OK) {
        return absl::InvalidArgumentError("SPDY header block uses an unknown zlib dictionary");
      }
      continue;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) {
      return absl::InvalidArgumentError(absl::StrCat("SPDY header block does not decompress (zlib ", rc, ")"));
    }
    raw.append(buf, sizeof(buf) - z.avail_out);
    if (rc == Z_BUF_ERROR && z.avail_out != 0) break;
  }
  SpdyHeaders headers;
  if (raw.size() < 4) return absl::InvalidArgumentError("SPDY header block too short");
  uint32_t count = GetU32(raw, 0);
  size_t pos = 4;
  for (uint32_t i = 0; i < count; ++i) {
    if (raw.size() - pos < 4) return absl::InvalidArgumentError("SPDY header block truncated");
    uint32_t nlen = GetU32(raw, pos);
    pos += 4;
    if (raw.size() - pos < nlen + 4) return absl::InvalidArgumentError("SPDY header block truncated");
    std::string name = raw.substr(pos, nlen);
    pos += nlen;
    uint32_t vlen = GetU32(raw, pos);
    pos += 4;
    if (raw.size() - pos < vlen) return absl::InvalidArgumentError("SPDY header block truncated");
    std::string value = raw.substr(pos, vlen);
    pos += vlen;
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    headers.emplace_back(std::move(name), std::move(value));
  }
  return headers;
}

std::string EncodeSpdyData(uint32_t stream_id, std::string_view data, bool fin) {
  std::string out = FrameHeader(stream_id & 0x7FFFFFFF, fin ? kSpdyFlagFin : 0, data.size());
  out.append(data);
  return out;
}

std::string EncodeSpdyControl(SpdyType type, uint8_t flags, std::string_view payload) {
  std::string out = FrameHeader(0x80000000u | (3u << 16) | static_cast<uint16_t>(type), flags, payload.size());
  out.append(payload);
  return out;
}

std::string EncodeSpdySynStream(uint32_t stream_id, const std::string& compressed_headers, bool fin) {
  std::string p;
  PutU32(p, stream_id & 0x7FFFFFFF);
  PutU32(p, 0);  // associated stream
  p.push_back(0);  // priority
  p.push_back(0);  // slot
  p += compressed_headers;
  return EncodeSpdyControl(SpdyType::kSynStream, fin ? kSpdyFlagFin : 0, p);
}

std::string EncodeSpdySynReply(uint32_t stream_id, const std::string& compressed_headers, bool fin) {
  std::string p;
  PutU32(p, stream_id & 0x7FFFFFFF);
  p += compressed_headers;
  return EncodeSpdyControl(SpdyType::kSynReply, fin ? kSpdyFlagFin : 0, p);
}

std::string EncodeSpdyRstStream(uint32_t stream_id, uint32_t status) {
  std::string p;
  PutU32(p, stream_id & 0x7FFFFFFF);
  PutU32(p, status);
  return EncodeSpdyControl(SpdyType::kRstStream, 0, p);
}

std::string EncodeSpdyGoAway(uint32_t last_stream_id, uint32_t status) {
  std::string p;
  PutU32(p, last_stream_id & 0x7FFFFFFF);
  PutU32(p, status);
  return EncodeSpdyControl(SpdyType::kGoAway, 0, p);
}

}  // namespace kelpie::kubelet
