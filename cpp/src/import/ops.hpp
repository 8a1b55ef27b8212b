// The converters of the C++ importer, one per op, and the registry that finds them.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "context.hpp"

namespace dtd::importer {

using Converter = void (*)(Context& ctx, const Node& node);

/// The converter of `op_type` at `opset`, or nullptr.
Converter lookup(const std::string& op_type, int64_t opset);
/// The op types the C++ importer converts, sorted.
std::vector<std::string> cpp_supported_ops();
/// Evaluates `node` at import when its inputs are constants or shape values (fold.cpp) and returns true; false when it
/// reads data (its converter handles it). An evaluation dtd does not support (a constant of an element type outside
/// NumPy's) is not_supported.
bool try_fold(Context& ctx, const Node& node);
/// The refusal of an op evaluated at import only, reached with a data input.
void convert_shape_only(Context& ctx, const Node& node);
/// The converters of Slice, Split and Gather on data (ops_shape.cpp).
void convert_slice(Context& ctx, const Node& node);
void convert_split(Context& ctx, const Node& node);
void convert_gather(Context& ctx, const Node& node);
/// Whether `value` is the graph output, or feeds only a chain of shape ops (Reshape, Flatten, Squeeze, Unsqueeze,
/// Identity, Dropout) that ends at it.
bool reaches_output_through_reshapes(const Context& ctx, const std::string& value);
/// The constant target of a Reshape whose shape input was computed from the batch size.
std::vector<int64_t> reshape_target(const Context& ctx, const Node& node);

// -- helpers shared by the converters' files -----------------------------------------------------------------------
/// Python's repr of an optional shape: "(None, 3)" or "None".
std::string shape_text(const std::optional<Dims>& shape);
/// Whether `shape` broadcasts (NumPy rules) to exactly `target`.
bool broadcasts_to(const std::vector<int64_t>& shape, const std::vector<int64_t>& target);
/// Adds an ``activation`` layer computing `op` of `source` (ops_act.cpp).
void add_activation(Context& ctx, const Node& node, ActivationOp op, const std::string& source,
                    std::map<std::string, double> floats = {}, std::map<std::string, Array> weights = {});

// -- converters defined outside ops.cpp ------------------------------------------------------------------------------
// ops_act.cpp (activations)
void convert_relu(Context& ctx, const Node& node);
void convert_clip(Context& ctx, const Node& node);
void convert_unary(Context& ctx, const Node& node);
void convert_prelu(Context& ctx, const Node& node);
void convert_gelu(Context& ctx, const Node& node);
void convert_erf_gelu(Context& ctx, const Node& node);
void convert_softmax(Context& ctx, const Node& node);
// ops_norm.cpp (LayerNormalization)
void convert_layernorm(Context& ctx, const Node& node);
void convert_decomposed_layernorm(Context& ctx, const Node& node);

}  // namespace dtd::importer
