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

// splitmix64 (Steele, Lea & Flood 2014): x + 0x9E3779B97F4A7C15, then two
// xor-shift-multiply rounds. Seeds that differ in one bit give unrelated
// values; the sampler's lane seeds, the rollout seeds and the study
// bootstrap draws are built from it, and tests re-implement it in Python.
std::uint64_t splitmix64(std::uint64_t x);

}  // namespace anchors
