#pragma once
// error_within_deadline(fifo, read): for tests that a reader refuses a FIFO
// instead of blocking on it. Shared by both test suites.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <string>
#include <thread>

#include "anchors/core/error.h"

namespace anchors::testing {

// Runs `read` on another thread and returns the message of the anchors::Error
// it throws ("" if it returns). If it is still blocked on the FIFO `fifo`
// after 10 s the test fails, and the reader is released by opening and
// closing the FIFO's write end (a reader blocked in open() counts as a
// reader, so a non-blocking open for writing succeeds; closing it gives the
// reader end-of-file): the test ends either way.
inline std::string error_within_deadline(const std::string& fifo, const std::function<void()>& read) {
  std::promise<std::string> done;
  std::future<std::string> result = done.get_future();
  std::thread reader([&done, &read] {
    try {
      read();
      done.set_value("");
    } catch (const Error& e) {
      done.set_value(e.what());
    } catch (...) {
      done.set_exception(std::current_exception());
    }
  });
  if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "reading the FIFO " << fifo << " blocked for 10 s";
    while (result.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
      const int writer = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
      if (writer >= 0) ::close(writer);
    }
  }
  reader.join();
  return result.get();
}

}  // namespace anchors::testing
