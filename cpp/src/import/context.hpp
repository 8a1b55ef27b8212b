// The C++ importer's private state: constants, value shapes, aliases of removed and folded ops, the layer drafts,
// and the text helpers that word the messages (the wording is fixed: tests check it).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "dtd/import.hpp"
#include "dtd/model_spec.hpp"
#include "dtd/onnx.hpp"

namespace dtd::importer {

namespace ox = dtd::onnx;

/// A shape with unknown extents (None in Python), batch axis included.
using Dims = std::vector<std::optional<int64_t>>;

// -- Python's reprs, for messages --------------------------------------------------------------------------------
/// "[1, 2]"
std::string py_list(const std::vector<int64_t>& v);
/// "[None, 3]"
std::string py_list(const Dims& v);
/// "(1, 2)", "(1,)", "()"
std::string py_tuple(const std::vector<int64_t>& v);
/// "(None, 3)"
std::string py_tuple(const Dims& v);
/// "['N', 3, 4]" from a shape whose first axis is the batch: every unknown extent is '?' but the first, 'N'.
std::string n_list(const Dims& shape);

// -- constants ---------------------------------------------------------------------------------------------------
/// An initializer or a Constant node's value, decoded as numpy_helper.to_array does: float types exactly as
/// float64 (`real`), integer and bool types as int64 (`integer`); other types keep only their dtype and dims.
struct Constant {
  int32_t dtype = 0;  // TensorProto.DataType
  std::vector<int64_t> dims;
  std::vector<double> real;       // float types; also float8, float4 (ml_dtypes) and the real parts of complex types
  std::vector<int64_t> integer;   // integer and bool types; also int4, uint4
  std::vector<double> imag;       // the imaginary parts of complex types
  std::vector<std::string> text;  // strings

  bool is_float() const;
  bool is_integer() const;
  int64_t numel() const;
  /// NumPy's name of the dtype ("float32", "int64", "bool", "object" for strings, ...).
  std::string dtype_name() const;
  /// The elements flattened as Python ints, as [int(v) for v in a.reshape(-1)] gives them (floats and the real parts
  /// of complex values truncated toward zero, strings parsed); the first element int() refuses raises its error.
  std::vector<int64_t> as_ints(const std::string& where) const;
  /// bool(a.reshape(-1)[0]) of a constant with at least one element.
  bool first_truth() const;
};

/// Decodes a tensor (its data already read; external data loaded). ModelLoadError for an inconsistent tensor.
Constant decode_tensor(const ox::Tensor& t);
/// A float64 Array of a float constant.
Array to_array(const Constant& c);

// -- schema (schema.cpp) -----------------------------------------------------------------------------------------
struct SchemaRow {
  const char* op;
  int since, min_inputs, max_inputs, min_outputs, max_outputs;
  std::vector<std::pair<const char*, const char*>> attributes;  // name, AttributeProto type name
};
struct HarmlessAttribute {
  const char* op;
  const char* attribute;
  int64_t value;
};
struct InputForm {
  const char* op;
  int since;
  int index;
  const char* form;  // "vector", "axes", "scalar"
};
/// An op fold.cpp evaluates at import when its inputs are constants (from opset `since`).
struct FoldOp {
  const char* op;
  int since;
};
const std::vector<SchemaRow>& schema_rows();
const std::vector<FoldOp>& fold_ops();
const std::vector<HarmlessAttribute>& harmless_attributes();
const std::vector<InputForm>& input_forms();
int64_t schema_max_opset();
int64_t schema_ir_version();
const char* schema_onnx_version();

void check_node(const ox::Node& node, const std::string& name, int64_t opset);
void check_constant_inputs(const ox::Node& node, const std::string& name, int64_t opset,
                           const std::map<std::string, std::vector<int64_t>>& dims);

// -- nodes -------------------------------------------------------------------------------------------------------
/// A read-only view of one node with its unique name.
class Node {
 public:
  Node(const ox::Node& proto, std::string name, int64_t opset, int index);

  const ox::Node& proto() const { return *proto_; }
  const std::string& name() const { return name_; }
  const std::string& op_type() const { return proto_->op_type; }
  int64_t opset() const { return opset_; }
  int index() const { return index_; }
  const std::vector<std::string>& inputs() const { return proto_->input; }
  const std::vector<std::string>& outputs() const { return proto_->output; }
  /// "<OpType> '<name>'"
  std::string describe() const;
  /// Input `i`, "" when absent.
  std::string input(size_t i) const;
  bool has(const std::string& attr) const { return attrs_.count(attr) != 0; }
  const ox::Attribute* attr(const std::string& name) const;

  int64_t int_attr(const std::string& name, int64_t fallback) const;
  double float_attr(const std::string& name, double fallback) const;
  std::string str_attr(const std::string& name, const std::string& fallback) const;
  std::optional<std::vector<int64_t>> optional_ints(const std::string& name,
                                                    std::optional<size_t> length = std::nullopt) const;
  std::vector<int64_t> ints_attr(const std::string& name, const std::vector<int64_t>& fallback,
                                 std::optional<size_t> length = std::nullopt) const;

 private:
  const ox::Node* proto_;
  std::string name_;
  int64_t opset_;
  int index_;
  std::map<std::string, const ox::Attribute*> attrs_;
};

/// A valid model outside what dtd converts (a constant of an element type outside NumPy's, say): an
/// UnsupportedModelError naming the node and `what`.
[[noreturn]] void not_supported(const Node& node, const std::string& what);

/// A float64 array with its shape (NumPy semantics for the pending affine maps' constants).
struct Grid {
  std::vector<int64_t> dims;
  std::vector<double> values;
};
/// a * b or a + b, broadcasting arrays of one rank (every extent 1 or the other's).
Grid broadcast(const Grid& a, const Grid& b, bool multiply);

/// A pending affine map: a value `source * scale + shift` (constant Mul/Div/Add/Sub, a BatchNormalization that
/// could not fold into the layer before it), the constants of `source`'s rank (batch axis extent 1).
struct Pending {
  std::string source;
  Grid scale, shift;
  std::string node;  // the last node of the map, described for messages
  std::string name;  // that node's name, for the affine layer
  bool has_shift() const;
};

/// A layer being built.
struct Draft {
  LayerSpec spec;
  std::string source;  // "Conv 'conv1'"
};

// -- the conversion context ----------------------------------------------------------------------------------------
class Context {
 public:
  int64_t opset = 0;
  std::string input_name;
  std::map<std::string, Constant> constants;
  /// Shapes of data values (batch axis included): the input's as declared, each layer output's as computed.
  std::map<std::string, Dims> shapes;
  std::map<std::string, std::string> static_alias;
  std::map<std::string, int> consumers;
  std::string graph_output;
  ImportLimits limits;
  std::deque<Draft> layers;  // a deque: drafts keep their address as layers are appended
  std::set<std::string> merged_batch;
  std::map<std::string, std::string> batch_flattened;         // value -> the refusal for any consumer
  std::map<std::string, std::string> batch_flattened_source;  // value -> the Reshape's source
  /// Every node of the graph: reaches_output_through_reshapes and the checks that look at a value's consumers read it.
  const std::vector<ox::Node>* graph_nodes = nullptr;
  /// Values computed from the batch size (shape arithmetic, fold.cpp): their values for the two sentinel batches.
  std::map<std::string, std::pair<Constant, Constant>> batch_values;
  /// Elements of all constants folded so far (against limits.max_folded_constant).
  int64_t folded_elements = 0;
  /// The graph input's batch extent as ONNX shape inference shows it in the graph checks' messages: 'N' (its
  /// dim_param), a number, or '?'.
  std::string batch_text = "'?'";
  bool is_batch_value(const std::string& name) const { return !name.empty() && batch_values.count(resolve(name)) != 0; }

  std::string static_resolve(const std::string& name) const;
  std::string resolve(const std::string& name) const;
  void alias(const std::string& output, const std::string& target);
  bool is_graph_output(const std::string& name) const { return static_resolve(name) == graph_output; }

  std::optional<Dims> shape_of(const std::string& name) const;
  std::optional<int64_t> rank_of(const std::string& name) const;
  std::optional<int64_t> dim_of(const std::string& name, int64_t axis) const;
  /// The per-sample shape when every per-sample extent is known.
  std::optional<std::vector<int64_t>> sample_shape(const std::string& name) const;

  bool is_constant(const std::string& name) const;
  bool is_data(const std::string& name) const;
  const Constant& raw_constant(const Node& node, size_t index, const std::string& what) const;
  /// A weight: a float constant as float64.
  const Constant& constant(const Node& node, size_t index, const std::string& what) const;
  const Constant* optional_constant(const Node& node, size_t index, const std::string& what) const;

  /// The resolved name of data input `index`, checked (check_data), a pending affine map on it materialized.
  std::string data_input(const Node& node, size_t index = 0);
  /// The resolved name of data input `index`, checked, a pending affine map left pending.
  std::string check_data(const Node& node, size_t index) const;
  /// The pending affine map on data input `index`, for a consumer that may fold it (nullptr for a plain value).
  const Pending* pending_affine(const Node& node, size_t index = 0) const;
  /// Records `node`'s output as input[index] * scale + shift (constants broadcasting against the input), composed with
  /// a pending map on that input.
  void add_pending_affine(const Node& node, size_t index, const Grid& scale, const Grid& shift);
  /// Turns the pending map producing `name` into an ``affine`` layer; returns its output.
  std::string materialize(const std::string& name);
  /// The node whose output `name` still carries a pending affine map, or nullptr.
  const Pending* pending_of(const std::string& name) const;

  Draft* producer(const std::string& name);
  /// The conv/dense layer producing input `index` when `node` is its only consumer.
  Draft* foldable_producer(const Node& node, size_t index = 0);

  /// Appends a layer producing `node`'s first output (or `output`), with the output shape `shape` (full, batch
  /// included; nullopt when unknown).
  Draft& add_layer(const Node& node, LayerKind kind, std::vector<std::string> inputs, std::optional<Dims> shape,
                   std::map<std::string, std::vector<int64_t>> ints = {}, std::map<std::string, double> floats = {},
                   std::map<std::string, Array> weights = {}, std::optional<std::string> output = std::nullopt,
                   std::optional<std::string> name = std::nullopt);

  std::set<std::string> used_names;
  /// Every value name of the graph (inputs, initializers, node outputs, value_info): what ONNX shape inference gives
  /// a shape for, which no generated name may take.
  std::set<std::string> value_names;

  /// A layer/value name derived from `base` that no node, layer or value uses yet.
  std::string unique_name(const std::string& base);

 private:
  std::map<std::string, Draft*> producer_;
  std::map<std::string, Pending> scaled_;
  std::map<std::string, std::string> alias_;
  std::map<std::string, int64_t> next_suffix_;
};

}  // namespace dtd::importer
