// Internal to common/http (includes Asio): an UpgradedConnection over an
// Asio stream whose operations all run on one strand. Read and Write block
// the calling thread on a future while the strand does the I/O, so one
// thread may read while another writes (one read and one write in flight is
// what Asio's SSL stream allows).
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>

#include "common/http/http_upgrade.h"

namespace kelpie::http::internal {

// `Stream` is an async read/write stream; `executor` its strand. `leftover`
// holds bytes already read past the HTTP head; they are returned first.
// `close` shuts the stream down (run on the strand).
template <typename Stream>
class AsioUpgradedConnection : public UpgradedConnection {
 public:
  AsioUpgradedConnection(Stream& stream, boost::asio::any_io_executor executor, std::string leftover,
                         std::function<void()> close)
      : stream_(stream), executor_(std::move(executor)), leftover_(std::move(leftover)), close_(std::move(close)) {}

  size_t Read(char* data, size_t size) override {
    if (size == 0) return 0;
    if (!leftover_.empty()) {
      size_t n = std::min(size, leftover_.size());
      std::memcpy(data, leftover_.data(), n);
      leftover_.erase(0, n);
      return n;
    }
    auto done = std::make_shared<std::promise<size_t>>();
    auto result = done->get_future();
    boost::asio::post(executor_, [this, data, size, done] {
      stream_.async_read_some(boost::asio::buffer(data, size),
                              [done](boost::beast::error_code ec, size_t n) { done->set_value(ec && n == 0 ? 0 : n); });
    });
    return result.get();
  }

  bool Write(std::string_view data) override {
    if (data.empty()) return true;
    auto done = std::make_shared<std::promise<bool>>();
    auto result = done->get_future();
    boost::asio::post(executor_, [this, data, done] {
      boost::asio::async_write(stream_, boost::asio::buffer(data.data(), data.size()),
                               [done](boost::beast::error_code ec, size_t) { done->set_value(!ec); });
    });
    return result.get();
  }

  void Close() override {
    auto done = std::make_shared<std::promise<void>>();
    auto result = done->get_future();
    boost::asio::post(executor_, [this, done] {
      if (close_) close_();
      done->set_value();
    });
    result.wait();
  }

 private:
  Stream& stream_;
  boost::asio::any_io_executor executor_;
  std::string leftover_;
  std::function<void()> close_;
};

}  // namespace kelpie::http::internal
