// ModelSpec pieces for the C++ tests: seeded random weight arrays and layer specs.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "dtd/model_spec.hpp"

namespace dtd_test {

/// An array of `shape` with values uniform in [lo, hi).
inline dtd::Array random_array(const dtd::Shape& shape, std::mt19937& rng, double lo, double hi) {
  std::uniform_real_distribution<double> u(lo, hi);
  dtd::Array a{shape, std::vector<double>(static_cast<size_t>(dtd::numel(shape)))};
  for (double& v : a.data) v = u(rng);
  return a;
}

/// A layer reading the values `in` and writing `out`.
inline dtd::LayerSpec layer(const std::string& name, dtd::LayerKind kind, std::vector<std::string> in,
                            const std::string& out) {
  dtd::LayerSpec l;
  l.name = name;
  l.kind = kind;
  l.inputs = std::move(in);
  l.output = out;
  return l;
}

/// A layer reading the one value `in`.
inline dtd::LayerSpec layer(const std::string& name, dtd::LayerKind kind, const char* in, const std::string& out) {
  return layer(name, kind, std::vector<std::string>{in}, out);
}

}  // namespace dtd_test
