// The ONNX importer: an ONNX model (a file, or its bytes) -> the ModelSpec a dtd::Network is built from.
//
// dtd's one importer (dtd.load calls it). It runs on the reader of dtd/onnx.hpp and checks the graph first (one data
// input of a float type, one output, the default-domain opset, the node arity and attribute table of
// tools/import_schema.py), orders it topologically (file order where possible), evaluates constants and shape
// arithmetic at import (NumPy's bool, integer and float16/32/64 types, promotion and floating-point errors), fuses
// the written-out patterns (the erf form of GELU, LayerNormalization with ReduceMean, gates), folds BatchNormalization
// and constant scales/shifts into a neighbouring conv/dense layer where exact (a shift into the next layer's bias in
// the documented sequential order), and converts every op of the README's "Supported ONNX" table. Errors: a
// ModelLoadError for a malformed or inconsistent model, an UnsupportedModelError for a valid one outside what dtd
// supports, each message naming the node, the op and the shapes. The weights are computed in float64, the same
// operations in the same order, no contraction into FMA: they come out bit for bit as the Python importer it
// replaced computed them (tests/data/import_golden.json.gz holds the record of that importer's results).
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

/// The op types the importer converts, sorted.
std::vector<std::string> import_supported_ops();

/// The versions of the onnx package whose operator schemas the importer's tables were generated from: the newest
/// opset and IR version accepted, and that package's version (named in messages).
struct ImportSchemaVersions {
  int64_t max_opset;
  int64_t ir_version;
  const char* onnx_version;
};
ImportSchemaVersions import_schema_versions();

}  // namespace dtd
