#pragma once
// Recognising a failed memory allocation, so that the Python module and the
// CLI report it as the user's problem (ta.Error / "anchors: error: ...")
// rather than an internal error: torch raises c10::OutOfMemoryError on CUDA
// and when the CPU allocator gets a null pointer, but a plain c10::Error
// ("[enforce fail at alloc_cpu.cpp] ... can't allocate memory") when
// posix_memalign fails; the C++ library itself raises std::bad_alloc.
#include <exception>
#include <optional>
#include <string>

namespace anchors::model {

// "out of memory: <the first line of the failure's message>" when `error` is
// an allocation failure of torch (CUDA or CPU) or std::bad_alloc; nullopt for
// anything else. No throw.
std::optional<std::string> allocation_failure(const std::exception& error);

}  // namespace anchors::model
