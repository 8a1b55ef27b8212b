// The C++ ONNX importer (dtd::load_onnx) on models written as protobuf bytes by hand: Conv + BatchNormalization
// (folded) + Relu + MaxPool + Flatten + Gemm, with the folded weights computed here as the Python importer computes
// them; the network built from the spec runs; unsupported ops and missing initializers are the Python importer's
// errors.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../../cpp/src/import/ops_affine.hpp"
#include "check.hpp"
#include "dtd/import.hpp"
#include "dtd/network.hpp"
#include "proto_bytes.hpp"

using dtd_test::check;

namespace {

using dtd_test::Bytes;
using dtd_test::len;
using dtd_test::tag;
using dtd_test::vint;

// TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9.
Bytes tensor(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& values) {
  Bytes t;
  for (int64_t d : dims) t += vint(1, d);
  t += vint(2, 1) + len(8, name);
  Bytes raw(values.size() * 4, '\0');
  std::memcpy(raw.data(), values.data(), raw.size());
  return t + len(9, raw);
}
Bytes int64_tensor(const std::string& name, const std::vector<int64_t>& values) {
  Bytes raw(values.size() * 8, '\0');
  std::memcpy(raw.data(), values.data(), raw.size());
  return vint(1, static_cast<int64_t>(values.size())) + vint(2, 7) + len(8, name) + len(9, raw);
}
Bytes int64_scalar(const std::string& name, int64_t value) {
  Bytes raw(8, '\0');
  std::memcpy(raw.data(), &value, 8);
  return vint(2, 7) + len(8, name) + len(9, raw);
}
// AttributeProto: name = 1, i = 3, ints = 8, type = 20 (INT 2, INTS 7).
Bytes int_attr(const std::string& name, int64_t v) {
  return len(1, name) + vint(3, v) + vint(20, 2);
}
Bytes ints_attr(const std::string& name, const std::vector<int64_t>& v) {
  Bytes a = len(1, name);
  for (int64_t x : v) a += vint(8, x);
  return a + vint(20, 7);
}
// NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5.
Bytes node(const std::string& op, const std::string& name, const std::vector<std::string>& in,
           const std::vector<std::string>& out, const std::vector<Bytes>& attrs = {}) {
  Bytes n;
  for (const auto& i : in) n += len(1, i);
  for (const auto& o : out) n += len(2, o);
  n += len(3, name) + len(4, op);
  for (const auto& a : attrs) n += len(5, a);
  return n;
}
// ValueInfoProto: name = 1, type = 2; TypeProto.tensor_type = 1: elem_type = 1, shape = 2; dim = 1: value 1, param 2.
Bytes value_info(const std::string& name, const std::vector<int64_t>& sample) {
  Bytes shape = len(1, len(2, "N"));
  for (int64_t d : sample) shape += len(1, vint(1, d));
  return len(1, name) + len(2, len(1, vint(1, 1) + len(2, shape)));
}
// GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12; ModelProto: ir_version = 1,
// opset_import = 8 (version = 2), graph = 7.
Bytes model(const std::vector<Bytes>& nodes, const std::vector<Bytes>& inits, const Bytes& input, const Bytes& output,
            int64_t opset = 13) {
  Bytes g;
  for (const auto& n : nodes) g += len(1, n);
  g += len(2, "test");
  for (const auto& t : inits) g += len(5, t);
  g += len(11, input) + len(12, output);
  return vint(1, 8) + len(8, vint(2, opset)) + len(7, g);
}

std::vector<float> ramp(size_t n, float start, float step) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + step * static_cast<float>(i % 7) - 0.01f * static_cast<float>(i);
  return v;
}

dtd::ModelSpec load(const Bytes& b) {
  return dtd::load_onnx(b.data(), b.size());
}

template <class E>
bool refused(const Bytes& b, const std::string& needle) {
  try {
    load(b);
  } catch (const E& e) {
    const bool ok = std::string(e.what()).find(needle) != std::string::npos;
    if (!ok) std::printf("  message: %s\n", e.what());
    return ok;
  } catch (const std::exception& e) {
    std::printf("  other error: %s\n", e.what());
  }
  return false;
}

void test_cnn() {
  const std::vector<float> w = ramp(2 * 1 * 3 * 3, -0.5f, 0.25f), b = {0.125f, -0.25f};
  const std::vector<float> gamma = {1.5f, 0.75f}, beta = {0.1f, -0.2f}, mean = {0.3f, -0.4f}, var = {2.0f, 0.5f};
  const std::vector<float> fc = ramp(3 * 2 * 2 * 2, 0.2f, -0.1f), fc_b = {0.5f, 0.0f, -0.5f};
  const float eps = 1e-3f;
  const Bytes m =
      model({node("Conv", "conv", {"x", "w", "b"}, {"c"},
                  {ints_attr("kernel_shape", {3, 3}), ints_attr("pads", {1, 1, 1, 1})}),
             node("BatchNormalization", "bn", {"c", "gamma", "beta", "mean", "var"}, {"n"},
                  {len(1, "epsilon") + tag(2, 5) + Bytes(reinterpret_cast<const char*>(&eps), 4) + vint(20, 1)}),
             node("Relu", "relu", {"n"}, {"r"}),
             node("MaxPool", "pool", {"r"}, {"p"}, {ints_attr("kernel_shape", {2, 2}), ints_attr("strides", {2, 2})}),
             node("Identity", "id", {"p"}, {"q"}), node("Flatten", "flat", {"q"}, {"f"}),
             node("Gemm", "fc", {"f", "fc", "fc_b"}, {"y"}, {int_attr("transB", 1)})},
            {tensor("w", {2, 1, 3, 3}, w), tensor("b", {2}, b), tensor("gamma", {2}, gamma), tensor("beta", {2}, beta),
             tensor("mean", {2}, mean), tensor("var", {2}, var), tensor("fc", {3, 8}, fc), tensor("fc_b", {3}, fc_b)},
            value_info("x", {1, 4, 4}), value_info("y", {3}));
  const dtd::ModelSpec spec = load(m);
  check(spec.input_name == "x" && spec.input_shape == dtd::Shape({1, 4, 4}) && spec.output == "y", "input, output");
  check(spec.layers.size() == 5, "conv (bn folded), relu, maxpool, flatten, dense");
  if (spec.layers.size() != 5) return;
  const dtd::LayerSpec& conv = spec.layers[0];
  check(conv.kind == dtd::LayerKind::conv && conv.name == "conv" && conv.output == "c", "conv layer");
  check(conv.ints.at("pads") == std::vector<int64_t>({1, 1, 1, 1}) && conv.ints.at("group") == std::vector<int64_t>{1},
        "conv attributes");
  // The Python importer's arithmetic: factor = g / sqrt(var + eps), offset = beta - mean * factor,
  // w' = w * factor, b' = b * factor + offset (float64, one rounding per operation).
  bool weights_equal = true;
  for (size_t o = 0; o < 2; ++o) {
    const double factor = double(gamma[o]) / std::sqrt(double(var[o]) + double(eps));
    const double product = double(mean[o]) * factor;
    const double offset = double(beta[o]) - product;
    for (size_t k = 0; k < 9; ++k)
      weights_equal = weights_equal && conv.weights.at("weight").data[o * 9 + k] == double(w[o * 9 + k]) * factor;
    const double scaled = double(b[o]) * factor;
    weights_equal = weights_equal && conv.weights.at("bias").data[o] == scaled + offset;
  }
  check(weights_equal, "BatchNormalization folded bit for bit");
  check(spec.layers[1].kind == dtd::LayerKind::relu && spec.layers[1].inputs == std::vector<std::string>{"c"},
        "relu reads the conv output (the BatchNormalization's output is an alias)");
  check(spec.layers[2].ints.at("kernel") == std::vector<int64_t>({2, 2}), "maxpool kernel");
  check(spec.layers[3].kind == dtd::LayerKind::flatten && spec.layers[3].inputs == std::vector<std::string>{"p"},
        "flatten reads through the Identity");
  const dtd::LayerSpec& dense = spec.layers[4];
  check(dense.kind == dtd::LayerKind::dense && dense.weights.at("weight").shape == dtd::Shape({3, 8}), "dense weight");
  check(dense.weights.at("bias").data == std::vector<double>({0.5, 0.0, -0.5}), "dense bias");
  const dtd::Network<double> net(spec);
  check(net.output_shape() == dtd::Shape({3}), "the network builds, output [3]");
  const dtd::Tensor<double> y = net.forward(dtd::Tensor<double>({2, 1, 4, 4}, 0.5));
  check(y.shape == dtd::Shape({2, 3}), "forward");
}

void test_matmul_bias_and_reshape() {
  const Bytes m = model(
      {node("Reshape", "flat", {"x", "shape"}, {"f"}), node("MatMul", "mm", {"f", "w"}, {"z"}),
       node("Add", "bias", {"z", "b"}, {"y"})},
      {int64_tensor("shape", {0, -1}), tensor("w", {6, 2}, ramp(12, 0.5f, -0.125f)), tensor("b", {2}, {1.0f, -1.0f})},
      value_info("x", {2, 3}), value_info("y", {2}));
  const dtd::ModelSpec spec = load(m);
  check(spec.layers.size() == 2 && spec.output == "z", "reshape, dense (the Add folds into its bias)");
  if (spec.layers.size() != 2) return;
  check(spec.layers[0].kind == dtd::LayerKind::reshape &&
            spec.layers[0].ints.at("shape") == std::vector<int64_t>({0, -1}),
        "reshape target");
  const dtd::Array& w = spec.layers[1].weights.at("weight");
  const std::vector<float> src = ramp(12, 0.5f, -0.125f);
  check(w.shape == dtd::Shape({2, 6}) && w.data[1] == double(src[2]) && w.data[6] == double(src[1]),
        "MatMul's weight transposed to [out, in]");
  check(spec.layers[1].weights.at("bias").data == std::vector<double>({1.0, -1.0}), "the Add's constant is the bias");
}

void test_errors() {
  const Bytes unsupported =
      model({node("Conv", "conv", {"x", "w"}, {"c"}), node("Sin", "s", {"c"}, {"y"})},
            {tensor("w", {1, 1, 1, 1}, {1.0f})}, value_info("x", {1, 2, 2}), value_info("y", {1, 2, 2}));
  check(refused<dtd::UnsupportedModelError>(unsupported, "unsupported op Sin (node 's', opset 13); supported ops: "),
        "an unsupported op names node and opset");
  const Bytes missing =
      model({node("Conv", "conv", {"x", "w"}, {"y"})}, {}, value_info("x", {1, 2, 2}), value_info("y", {1, 2, 2}));
  check(refused<dtd::ModelLoadError>(missing,
                                     "Conv 'conv': input 'w' is neither an initializer, the graph input nor "
                                     "the output of a node (missing initializer?)"),
        "a missing initializer");
  const Bytes two_d = model({node("Conv", "conv", {"x", "w"}, {"y"})}, {tensor("w", {1, 1}, {1.0f})},
                            value_info("x", {1, 2, 2}), value_info("y", {1, 2, 2}));
  check(refused<dtd::UnsupportedModelError>(two_d,
                                            "Conv 'conv': 1-D, 2-D and 3-D convolutions are supported (weight "
                                            "[Cout, Cin/group, k...] of rank 3 to 5); the weight has shape (1, 1)"),
        "a conv weight of rank 2");
  const Bytes strides =
      model({node("Conv", "conv", {"x", "w"}, {"y"}, {ints_attr("strides", {1})})}, {tensor("w", {1, 1, 1, 1}, {1.0f})},
            value_info("x", {1, 2, 2}), value_info("y", {1, 2, 2}));
  check(refused<dtd::ModelLoadError>(strides, "Conv 'conv': attribute 'strides' has 1 entries [1], expected 2"),
        "strides of the wrong length");
  const Bytes old = model({node("Relu", "r", {"x"}, {"y"})}, {}, value_info("x", {3}), value_info("y", {3}), 5);
  check(refused<dtd::UnsupportedModelError>(old, "opset 5 of the default ONNX domain is older than dtd supports"),
        "an opset older than 6");
}

/// The importer's internal folds where no ONNX model reaches them: the documented order of sequential_row_sums, and
/// a BatchNormalization folded into a layer whose output units are not its channels (NumPy broadcasting, or its
/// ValueError, as norm.py gets them).
void test_internal_folds() {
  namespace imp = dtd::importer;
  const std::vector<double> m{1e16, 1.0, -1e16, 2.0, 3.0, 4.0};
  const auto sums = imp::sequential_row_sums(m.data(), 2, 3, [](size_t r, size_t) { return r ? 0.5 : 1.0; });
  check(sums == std::vector<double>{0.0, 4.5}, "row sums left to right: (1e16 + 1) - 1e16 is 0");
  check(imp::sequential_row_sums(m.data(), 2, 0, [](size_t, size_t) { return 1.0; }) == std::vector<double>{0.0, 0.0},
        "an empty row sums to 0");
  dtd::onnx::Node proto;
  proto.op_type = "BatchNormalization";
  const imp::Node bn(proto, "bn", 13, 0);
  imp::Draft one;
  one.spec.weights["weight"] = dtd::Array{dtd::Shape{1, 2}, {2.0, 3.0}};
  imp::fold_batchnorm(bn, one, {1.0, 2.0, 3.0}, {0.5, 0.25, -1.0}, 3);
  check(one.spec.weights.at("weight").shape == dtd::Shape{3, 2} &&
            one.spec.weights.at("weight").data == std::vector<double>{2, 3, 4, 6, 6, 9},
        "one unit broadcast to the channels");
  check(one.spec.weights.at("bias").data == std::vector<double>{0.5, 0.25, -1.0}, "the bias (zeros(3) * k + offset)");
  imp::Draft four;
  four.spec.weights["weight"] = dtd::Array{dtd::Shape{4, 2}, std::vector<double>(8, 1.0)};
  bool refused = false;
  try {
    imp::fold_batchnorm(bn, four, {1.0, 2.0}, {0.0, 0.0}, 2);
  } catch (const dtd::ModelLoadError& e) {
    refused = std::string(e.what()) ==
              "BatchNormalization 'bn': ValueError: operands could not be broadcast together with shapes (4,2) (2,1) ";
  }
  check(refused, "four units against two channels: NumPy's ValueError");
}

/// With a folder argument (tools/sanitize.sh-style runs: `dtd_test_import tests/data`): every .onnx below it, and
/// each with a few bytes overwritten (a fixed generator), imports or raises dtd::ModelLoadError, nothing else.
void test_files(const std::string& folder) {
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  int files = 0, imported = 0, mutants = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(folder)) {
    if (entry.path().extension() != ".onnx") continue;
    ++files;
    try {
      dtd::load_onnx(entry.path().string());
      ++imported;
    } catch (const dtd::ModelLoadError&) {
    }
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    const std::string original = bytes.str();
    for (int k = 0; k < 20 && !original.empty(); ++k, ++mutants) {
      std::string data = original;
      for (uint64_t n = 1 + next() % 8; n > 0; --n) data[next() % data.size()] = static_cast<char>(next());
      try {
        load(data);
      } catch (const dtd::ModelLoadError&) {
      }
    }
  }
  std::printf("import: %d files (%d imported), %d mutants\n", files, imported, mutants);
  check(files > 0, "model files found");
}

}  // namespace

void test_folding_and_slice() {
  // The bias is evaluated at import: (b * c) in float32 (NumPy's float32 multiply), then Sub of an integer Range cast
  // to float32; the data is sliced on a per-sample axis first.
  const std::vector<float> b{0.1f, 0.7f}, c{3.3f, -1.9f};
  const Bytes m =
      model({node("Slice", "slice", {"x", "starts", "ends", "axes"}, {"s"}), node("MatMul", "mm", {"s", "w"}, {"z"}),
             node("Mul", "mul", {"b", "c"}, {"bc"}), node("Range", "range", {"r0", "r1", "r2"}, {"r"}),
             node("Cast", "cast", {"r"}, {"rf"}, {int_attr("to", 1)}), node("Sub", "sub", {"bc", "rf"}, {"bias"}),
             node("Add", "add", {"z", "bias"}, {"y"})},
            {int64_tensor("starts", {1}), int64_tensor("ends", {4}), int64_tensor("axes", {1}),
             tensor("w", {3, 2}, ramp(6, 0.5f, 0.25f)), tensor("b", {2}, b), tensor("c", {2}, c), int64_scalar("r0", 2),
             int64_scalar("r1", 6), int64_scalar("r2", 3)},
            value_info("x", {5}), value_info("y", {2}));
  const dtd::ModelSpec spec = load(m);
  check(spec.layers.size() == 2 && spec.layers[0].kind == dtd::LayerKind::slice, "slice, dense");
  if (spec.layers.size() != 2) return;
  check(spec.layers[0].ints.at("starts") == std::vector<int64_t>({1}) &&
            spec.layers[0].ints.at("axes") == std::vector<int64_t>({1}),
        "the slice's parameters");
  const std::vector<double>& bias = spec.layers[1].weights.at("bias").data;
  check(bias.size() == 2 && bias[0] == double(b[0] * c[0] - 2.0f) && bias[1] == double(b[1] * c[1] - 5.0f),
        "the folded bias in float32, bit for bit");
}

int main(int argc, char** argv) {
  if (argc > 1) test_files(argv[1]);
  test_cnn();
  test_matmul_bias_and_reshape();
  test_errors();
  test_internal_folds();
  test_folding_and_slice();
  const std::vector<std::string> ops = dtd::import_supported_ops();
  check(std::is_sorted(ops.begin(), ops.end()) && std::count(ops.begin(), ops.end(), "Add") == 1 &&
            std::count(ops.begin(), ops.end(), "Slice") == 1 && std::count(ops.begin(), ops.end(), "Range") == 1,
        "the supported ops, sorted, each once (the shape-only ops evaluated at import among them)");
  if (dtd_test::failures)
    std::printf("%d failure(s)\n", dtd_test::failures);
  else
    std::printf("import: all checks passed\n");
  return dtd_test::failures ? 1 : 0;
}
