// The standard networks of the benchmark, built as dtd::ModelSpec in C++ with seeded Kaiming-normal weights (ONNX
// models given with --model are imported by dtd::load_onnx).
#pragma once

#include <cstdint>
#include <dtd/model_spec.hpp>
#include <string>
#include <vector>

namespace bench {

/// Names accepted by `build_model`, in the order the harness runs them (small to large).
const std::vector<std::string>& model_names();

/// Builds one of `model_names()`; the weights depend only on `seed`. Throws std::invalid_argument for an
/// unknown name.
dtd::ModelSpec build_model(const std::string& name, uint64_t seed);

}  // namespace bench
