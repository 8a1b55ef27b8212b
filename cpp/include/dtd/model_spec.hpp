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
  conv,           // "weight" [Cout, Cin/group, kh, kw], optional "bias"; ints strides, pads, dilations, group, auto_pad
  relu,           //
  maxpool,        // ints kernel, strides, pads, dilations, ceil_mode, auto_pad
  avgpool,        // ints kernel, strides, pads, ceil_mode, count_include_pad, auto_pad
  globalavgpool,  //
  flatten,        // ints axis (ONNX axis, counting the batch axis, >= 1)
  reshape,        // ints shape (ONNX target shape including the batch entry; 0 copies, -1 infers)
  add,            // two or more inputs of equal shape
  concat,         // ints axis (ONNX axis, counting the batch axis; negative allowed)
  softmax,        // ints axis; only as the last layer (the head): relevance starts at its input
  logsoftmax,     // ints axis; likewise
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

struct Array {
  Shape shape;
  std::vector<double> data;  // row-major
};

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
};

}  // namespace dtd
