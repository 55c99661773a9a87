#pragma once
// FNV-1a 64: a hash of bytes that is the same on every machine, compiler and
// version (std::hash is not), for names and checks that must agree across
// runs: problem folders, intervention ids, seeds, the base solution recorded
// in a rollout folder's manifest. O(size). Not cryptographic: it tells
// accidental differences apart, not forgeries.
#include <cstdint>
#include <string_view>

namespace anchors {

std::uint64_t fnv1a64(std::string_view bytes);

}  // namespace anchors
