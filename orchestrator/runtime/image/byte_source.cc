#include "orchestrator/runtime/image/byte_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace kelpie::image {

absl::Status ReadFully(ByteSource& source, char* buffer, size_t size, absl::string_view what) {
  size_t done = 0;
  while (done < size) {
    absl::StatusOr<size_t> n = source.Read(buffer + done, size - done);
    if (!n.ok()) return n.status();
    if (*n == 0) {
      return absl::DataLossError(
          absl::StrCat(what, " is truncated: wanted ", size, " bytes, got ", done));
    }
    done += *n;
  }
  return absl::OkStatus();
}

absl::Status Drain(ByteSource& source) {
  char buffer[65536];
  while (true) {
    absl::StatusOr<size_t> n = source.Read(buffer, sizeof(buffer));
    if (!n.ok()) return n.status();
    if (*n == 0) return absl::OkStatus();
  }
}

absl::StatusOr<std::unique_ptr<FileSource>> FileSource::Open(const std::string& path,
                                                             uint64_t offset, int64_t length) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::Status(absl::ErrnoToStatusCode(errno),
                        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  uint64_t remaining;
  if (length >= 0) {
    remaining = static_cast<uint64_t>(length);
  } else {
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return absl::Status(absl::ErrnoToStatusCode(err),
                          absl::StrCat("cannot stat ", path, ": ", std::strerror(err)));
    }
    uint64_t file_size = static_cast<uint64_t>(st.st_size);
    remaining = file_size > offset ? file_size - offset : 0;
  }
  return std::unique_ptr<FileSource>(new FileSource(fd, path, offset, remaining));
}

FileSource::~FileSource() { ::close(fd_); }

absl::StatusOr<size_t> FileSource::Read(char* buffer, size_t size) {
  size_t want = static_cast<size_t>(std::min<uint64_t>(size, remaining_));
  if (want == 0) return 0;
  while (true) {
    ssize_t n = ::pread(fd_, buffer, want, static_cast<off_t>(offset_));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::Status(absl::ErrnoToStatusCode(errno),
                          absl::StrCat("cannot read ", path_, ": ", std::strerror(errno)));
    }
    if (n == 0) {
      return absl::DataLossError(absl::StrCat(path_, " is truncated at byte ", offset_));
    }
    offset_ += static_cast<uint64_t>(n);
    remaining_ -= static_cast<uint64_t>(n);
    return static_cast<size_t>(n);
  }
}

absl::StatusOr<size_t> StringSource::Read(char* buffer, size_t size) {
  size_t n = std::min(size, data_.size() - position_);
  std::memcpy(buffer, data_.data() + position_, n);
  position_ += n;
  return n;
}

struct GzipSource::State {
  z_stream stream{};
  bool initialized = false;
  bool finished = false;
  char input[65536];
};

GzipSource::GzipSource(ByteSource& compressed, std::string name)
    : compressed_(compressed), name_(std::move(name)), state_(std::make_unique<State>()) {}

GzipSource::~GzipSource() {
  if (state_->initialized) inflateEnd(&state_->stream);
}

absl::StatusOr<size_t> GzipSource::Read(char* buffer, size_t size) {
  State& s = *state_;
  if (!s.initialized) {
    // 15 + 16: gzip wrapper only (a layer is never raw zlib).
    if (inflateInit2(&s.stream, 15 + 16) != Z_OK) {
      return absl::InternalError(absl::StrCat("cannot start gzip decoder for ", name_));
    }
    s.initialized = true;
  }
  if (s.finished || size == 0) return 0;
  s.stream.next_out = reinterpret_cast<Bytef*>(buffer);
  s.stream.avail_out = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
  while (s.stream.avail_out == size) {
    if (s.stream.avail_in == 0) {
      absl::StatusOr<size_t> n = compressed_.Read(s.input, sizeof(s.input));
      if (!n.ok()) return n.status();
      if (*n == 0) {
        return absl::DataLossError(absl::StrCat("gzip stream of ", name_, " is truncated"));
      }
      s.stream.next_in = reinterpret_cast<Bytef*>(s.input);
      s.stream.avail_in = static_cast<uInt>(*n);
    }
    int rc = inflate(&s.stream, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      // Another member may follow (pigz, concatenated gzip files).
      if (s.stream.avail_in == 0) {
        absl::StatusOr<size_t> n = compressed_.Read(s.input, sizeof(s.input));
        if (!n.ok()) return n.status();
        if (*n == 0) {
          s.finished = true;
          break;
        }
        s.stream.next_in = reinterpret_cast<Bytef*>(s.input);
        s.stream.avail_in = static_cast<uInt>(*n);
      }
      inflateReset(&s.stream);
      continue;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return absl::DataLossError(absl::StrCat("gzip stream of ", name_, " is corrupt: ",
                                              s.stream.msg ? s.stream.msg : "inflate failed"));
    }
  }
  return size - s.stream.avail_out;
}

absl::StatusOr<size_t> HashingSource::Read(char* buffer, size_t size) {
  absl::StatusOr<size_t> n = inner_.Read(buffer, size);
  if (n.ok()) {
    hasher_.Update(buffer, *n);
    bytes_read_ += *n;
  }
  return n;
}

absl::StatusOr<size_t> PrefixedSource::Read(char* buffer, size_t size) {
  if (position_ < prefix_.size()) {
    size_t n = std::min(size, prefix_.size() - position_);
    std::memcpy(buffer, prefix_.data() + position_, n);
    position_ += n;
    return n;
  }
  return rest_.Read(buffer, size);
}

bool LooksGzipped(absl::string_view first_bytes) {
  return first_bytes.size() >= 2 && static_cast<unsigned char>(first_bytes[0]) == 0x1f &&
         static_cast<unsigned char>(first_bytes[1]) == 0x8b;
}

std::string GzipCompress(absl::string_view data) {
  z_stream stream{};
  // 15 + 16: write a gzip wrapper. Failure here means no memory.
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    std::abort();
  }
  std::string out(deflateBound(&stream, data.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  if (deflate(&stream, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

}  // namespace kelpie::image
