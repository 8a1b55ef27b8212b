// The ONNX importer in C++: an ONNX model (a file, or its bytes) -> the ModelSpec a dtd::Network is built from.
//
// It is the port of the Python importer (python/dtd/onnx/), step by step: the same graph checks (one data input of a
// float type, one output, the default-domain opset, the node arity and attribute table of schema.py), the same
// topological order (file order where possible), the same converters, the same folding of BatchNormalization and
// of constant bias Adds into the conv/dense layer before them, and the same errors: a ModelLoadError for a malformed
// or inconsistent model, an UnsupportedModelError for a valid one outside what dtd supports, each message naming the
// node, the op and the shapes as the Python importer words it. The weights come out bit for bit as the Python
// importer computes them (float64, the same operations in the same order, no contraction into FMA).
//
// What it covers today: Conv, Gemm, MatMul, Relu, the activations (Clip, LeakyRelu, Elu, Selu, Sigmoid, Tanh,
// HardSigmoid, HardSwish, Softplus, PRelu with a constant slope, Gelu-20), Softmax and LogSoftmax at the head,
// LayerNormalization-17, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, spatial ReduceMean, LRN, Flatten,
// Reshape, Squeeze, Unsqueeze, Transpose, Concat, Slice, Split, Gather (also the gather from a batch flattened with
// its samples), Pad (every opset's form and mode; a constant pad folded into the Conv / AveragePool / MaxPool after it
// where exact), Add/Sum, constant Add/Sub/Mul/Div (the legacy broadcast attribute of opset < 7 too) and
// BatchNormalization (folded into a neighbouring conv/dense layer where exact, a constant shift into the next layer's
// bias in the documented sequential order, else an affine layer), gates, Identity, Dropout, Constant nodes and
// initializers, fuse.py's patterns (the erf form of GELU and the LayerNormalization written out with ReduceMean, each
// fused into one layer), and all of fold.py's import-time evaluation of constants and shape arithmetic (every
// evaluator, on NumPy's bool, integer and float16/32/64 types with NumPy's promotion and floating-point errors). A
// model that needs more (a constant of another element type in the shape arithmetic) is an UnsupportedModelError
// whose message says that the C++ importer does not cover it yet; dtd.load still uses the Python importer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dtd/error.hpp"
#include "dtd/model_spec.hpp"

namespace dtd {

/// A valid ONNX model outside what dtd supports (an op, an attribute value, an opset). Python:
/// dtd.UnsupportedModelError.
class UnsupportedModelError : public ModelLoadError {
 public:
  using ModelLoadError::ModelLoadError;
};

/// What a model file may ask for before it is refused (dtd.Limits in Python; the same defaults).
struct ImportLimits {
  int64_t max_folded_constant = int64_t{1} << 26;
  int64_t max_activation = int64_t{1} << 27;
  int64_t max_total_activation = int64_t{1} << 27;
  int64_t max_nodes = int64_t{1} << 17;
  int64_t max_depth = 8;
};

/// The imported model: the spec and the facts about the source model that dtd.Model reports.
struct ImportedModel {
  ModelSpec spec;
  int64_t opset = 0;                 // of the default ONNX domain
  std::string input_dtype;           // "float32", "float64", "float16", "bfloat16"
  bool merged_batch_output = false;  // the ONNX output's leading axis merges the batch with per-sample axes
  std::string source;                // the path, "<bytes>", or the name given for bytes
  /// Declared shapes (value_info and graph outputs, the batch axis included; nullopt: an unknown extent) of layer
  /// outputs whose batch axis is the ONNX leading axis: check_declared_shapes compares them with what a network
  /// built from the spec computes.
  std::map<std::string, std::vector<std::optional<int64_t>>> declared;
};

/// Imports the .onnx file at `path` (external data from `base_dir`, by default the file's folder). Errors are
/// prefixed with the path.
ImportedModel import_onnx(const std::string& path, const ImportLimits& limits = {},
                          const std::optional<std::string>& base_dir = std::nullopt);
/// Imports a serialized ModelProto; external data is read from `base_dir` (none given: a model with external data is
/// an error). `source` names the bytes in messages and in ImportedModel::source (e.g. "<ModelProto>").
ImportedModel import_onnx(const void* data, size_t size, const std::optional<std::string>& base_dir = std::nullopt,
                          const ImportLimits& limits = {}, const std::string& source = "<bytes>");

/// Throws ModelLoadError when a declared shape of `imported` (value_info or graph output) contradicts the per-sample
/// shape `computed` gives the same layer output, wherever both know an extent and the ranks agree (a declaration of
/// another rank is ignored, as onnxruntime ignores it). `computed`: layer output name -> per-sample shape.
void check_declared_shapes(const ImportedModel& imported, const std::map<std::string, std::vector<int64_t>>& computed);

/// import_onnx(path).spec.
ModelSpec load_onnx(const std::string& path, const ImportLimits& limits = {});
/// import_onnx(data, size, base_dir).spec.
ModelSpec load_onnx(const void* data, size_t size, const std::optional<std::string>& base_dir = std::nullopt,
                    const ImportLimits& limits = {});

/// The op types the C++ importer converts, sorted.
std::vector<std::string> import_supported_ops();

/// The versions of the onnx package whose operator schemas the importer's tables were generated from: the newest
/// opset and IR version accepted, and that package's version (named in messages, as the Python importer does).
struct ImportSchemaVersions {
  int64_t max_opset;
  int64_t ir_version;
  const char* onnx_version;
};
ImportSchemaVersions import_schema_versions();

}  // namespace dtd
