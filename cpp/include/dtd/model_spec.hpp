// ModelSpec: the plain-data description of a network (layer kinds, attributes, weights) that the ONNX importer
// produces and that C++ services can fill in programmatically. A dtd::Network is built from it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dtd/tensor.hpp"

namespace dtd {

enum class LayerKind {
  dense,          // weights "weight" [out, in], optional "bias" [out]; applies to the last axis
  conv,           // "weight" [Cout, Cin/group, k...] (1 to 3 spatial axes), optional "bias"; ints strides, pads,
                  // dilations, group, auto_pad (one value per spatial axis; pads: begins, then ends)
  relu,           //
  maxpool,        // ints kernel, strides, pads, dilations, ceil_mode, auto_pad (1 to 3 spatial axes, as conv)
  avgpool,        // ints kernel, strides, pads, dilations, ceil_mode, count_include_pad, auto_pad (likewise)
  globalavgpool,  //
  flatten,        // ints axis (ONNX axis, counting the batch axis, >= 1)
  reshape,        // ints shape (ONNX target shape including the batch entry; 0 copies, -1 infers)
  add,            // two or more inputs of equal shape
  concat,         // ints axis (ONNX axis, counting the batch axis; negative allowed)
  softmax,        // ints axis; only as the last layer (the head): relevance starts at its input
  logsoftmax,     // ints axis; likewise
  affine,         // weights "scale", "shift" broadcasting (right-aligned) against the per-sample input: y = s x + t
  layernorm,      // ints axis (ONNX axis, >= 1: normalises axis..rank-1); floats epsilon; "scale", optional "bias"
  globalmaxpool,  // any number of spatial axes
  activation,     // ints op (ActivationOp); floats alpha, beta, gamma, min, max; PRelu: weight "slope"
  gate,           // inputs [signal, gate]: y = signal * gate, the gate broadcast against the signal
  transpose,      // ints perm (ONNX perm, batch axis included: perm[0] == 0)
  slice,          // ints axes (ONNX axes, >= 1 or negative), starts, ends, optional steps; clamped as ONNX does
  gather,         // ints axis, indices (constant), optional squeeze (1: one scalar index, the axis is dropped)
  pad,            // ints pads (ONNX order, batch entries 0; negative crops), mode (PadMode); floats value
  lrn,            // ints size; floats alpha, beta, bias (ONNX LRN across axis 1)
};

/// Name of a kind as used in messages and in Python ("dense", "conv", ...).
const char* to_string(LayerKind kind);

/// ONNX auto_pad values, as stored in the "auto_pad" attribute.
enum AutoPad : int64_t { kNotSet = 0, kSameUpper = 1, kSameLower = 2, kValid = 3 };

/// The element-wise functions of the "activation" kind, as stored in its "op" attribute (ONNX definitions and
/// defaults; floats absent take the ONNX default). kGeluTanh is Gelu with approximate="tanh"; kSilu is x sigmoid(x).
enum ActivationOp : int64_t {
  kClip = 0,         // floats min, max (absent: no bound)
  kLeakyRelu = 1,    // alpha (0.01)
  kPRelu = 2,        // weight "slope", broadcast against the per-sample input shape
  kElu = 3,          // alpha (1)
  kSelu = 4,         // alpha (1.6732632...), gamma (1.0507009...)
  kSigmoid = 5,      //
  kTanh = 6,         //
  kHardSigmoid = 7,  // alpha (0.2), beta (0.5): max(0, min(1, alpha x + beta))
  kHardSwish = 8,    // x max(0, min(1, x / 6 + 1 / 2))
  kSoftplus = 9,     // log(1 + exp(x))
  kGelu = 10,        // x Phi(x) with the exact normal CDF (erf)
  kGeluTanh = 11,    // the tanh approximation
  kSilu = 12,        // x sigmoid(x)
};

struct Array {
  Shape shape;
  std::vector<double> data;  // row-major
};

/// One layer. `ints` and `floats` take only the keys its kind lists above: a Network refuses any other key (a
/// misspelt "stride" is a ModelError naming it and the keys the kind takes, not an unstrided conv).
struct LayerSpec {
  std::string name;
  LayerKind kind = LayerKind::relu;
  std::vector<std::string> inputs;  // value names: the model input or other layers' outputs
  std::string output;               // the value name this layer produces
  std::map<std::string, std::vector<int64_t>> ints;
  std::map<std::string, double> floats;
  std::map<std::string, Array> weights;
};

struct ModelSpec {
  std::string input_name;
  Shape input_shape;  // per sample: batch axis excluded
  std::string output;
  std::vector<LayerSpec> layers;  // in topological order
  /// Resource limit: the most elements per sample that the input or any layer output may have (default 2^27).
  /// Checked when a Network is built, so that an oversized declaration is a ModelError, not a failed allocation.
  int64_t max_activation = int64_t{1} << 27;
  /// Resource limit: the most elements per sample of the input and all layer outputs together (default 2^27): an
  /// explanation keeps every layer's output for the backward pass, so this bounds its memory per sample.
  int64_t max_total_activation = int64_t{1} << 27;
};

}  // namespace dtd
