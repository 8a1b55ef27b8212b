#include "models.hpp"

#include <cmath>
#include <map>
#include <random>
#include <stdexcept>

namespace bench {

namespace {

using dtd::LayerKind;
using dtd::LayerSpec;
using dtd::ModelSpec;

// Appends layers to a spec, naming each value after its layer, and tracks the current value and its shape.
class Builder {
 public:
  Builder(uint64_t seed, dtd::Shape input_shape) : rng_(seed) {
    spec_.input_name = "input";
    spec_.input_shape = input_shape;
    value_ = "input";
    shape_ = std::move(input_shape);
    shapes_[value_] = shape_;
  }

  std::string conv(int64_t cout, int64_t k, int64_t stride, int64_t pad, const std::string& from = "") {
    const std::string in = from.empty() ? value_ : from;
    const dtd::Shape& s = from.empty() ? shape_ : shapes_.at(in);
    const int64_t cin = s[0];
    LayerSpec l = make(LayerKind::conv, "conv", {in});
    l.weights["weight"] = kaiming({cout, cin, k, k}, cin * k * k);
    l.weights["bias"] = small_bias(cout);
    l.ints["strides"] = {stride, stride};
    l.ints["pads"] = {pad, pad, pad, pad};
    const int64_t oh = (s[1] + 2 * pad - k) / stride + 1, ow = (s[2] + 2 * pad - k) / stride + 1;
    return push(std::move(l), {cout, oh, ow});
  }
  std::string dense(int64_t out) {
    LayerSpec l = make(LayerKind::dense, "fc", {value_});
    l.weights["weight"] = kaiming({out, shape_[0]}, shape_[0]);
    l.weights["bias"] = small_bias(out);
    return push(std::move(l), {out});
  }
  std::string relu() { return push(make(LayerKind::relu, "relu", {value_}), shape_); }
  std::string maxpool(int64_t k, int64_t stride, int64_t pad) {
    LayerSpec l = make(LayerKind::maxpool, "pool", {value_});
    l.ints["kernel"] = {k, k};
    l.ints["strides"] = {stride, stride};
    l.ints["pads"] = {pad, pad, pad, pad};
    return push(std::move(l),
                {shape_[0], (shape_[1] + 2 * pad - k) / stride + 1, (shape_[2] + 2 * pad - k) / stride + 1});
  }
  std::string globalavgpool() { return push(make(LayerKind::globalavgpool, "gap", {value_}), {shape_[0], 1, 1}); }
  std::string flatten() {
    LayerSpec l = make(LayerKind::flatten, "flatten", {value_});
    l.ints["axis"] = {1};
    return push(std::move(l), {dtd::numel(shape_)});
  }
  std::string add(const std::string& a, const std::string& b) {
    return push(make(LayerKind::add, "add", {a, b}), shape_);
  }

  /// Makes `v` the current value again (to start a second branch from it).
  void use(const std::string& v) {
    value_ = v;
    shape_ = shapes_.at(v);
  }
  const std::string& value() const { return value_; }

  ModelSpec finish() {
    spec_.output = value_;
    return std::move(spec_);
  }

 private:
  LayerSpec make(LayerKind kind, const char* prefix, std::vector<std::string> inputs) {
    LayerSpec l;
    l.kind = kind;
    l.name = std::string(prefix) + std::to_string(++counts_[static_cast<int>(kind)]);
    l.inputs = std::move(inputs);
    l.output = l.name;
    return l;
  }
  std::string push(LayerSpec l, dtd::Shape out) {
    value_ = l.output;
    shape_ = out;
    shapes_[value_] = std::move(out);
    spec_.layers.push_back(std::move(l));
    return value_;
  }
  // Kaiming-normal (He) initialisation: N(0, 2 / fan_in), so ReLU activations stay O(1) through depth.
  dtd::Array kaiming(dtd::Shape shape, int64_t fan_in) {
    std::normal_distribution<double> g(0.0, std::sqrt(2.0 / static_cast<double>(fan_in)));
    dtd::Array a{shape, std::vector<double>(static_cast<size_t>(dtd::numel(shape)))};
    for (double& v : a.data) v = g(rng_);
    return a;
  }
  // Folded batch norms leave biases of either sign; small ones keep the ReLU patterns realistic.
  dtd::Array small_bias(int64_t n) {
    std::normal_distribution<double> g(0.0, 0.01);
    dtd::Array a{{n}, std::vector<double>(static_cast<size_t>(n))};
    for (double& v : a.data) v = g(rng_);
    return a;
  }

  std::mt19937_64 rng_;
  ModelSpec spec_;
  std::string value_;
  dtd::Shape shape_;
  std::map<std::string, dtd::Shape> shapes_;
  std::map<int, int> counts_;
};

ModelSpec mlp(uint64_t seed) {
  Builder b(seed, {1, 28, 28});
  b.flatten();
  b.dense(300), b.relu();
  b.dense(100), b.relu();
  b.dense(10);
  return b.finish();
}

ModelSpec lenet(uint64_t seed) {
  Builder b(seed, {1, 28, 28});
  b.conv(32, 5, 1, 2), b.relu(), b.maxpool(2, 2, 0);
  b.conv(64, 5, 1, 2), b.relu(), b.maxpool(2, 2, 0);
  b.flatten();
  b.dense(1024), b.relu();
  b.dense(10);
  return b.finish();
}

// VGG feature stacks: a channel count is a 3x3 conv + ReLU, 0 a 2x2 max pool.
ModelSpec vgg(uint64_t seed, dtd::Shape input, const std::vector<int64_t>& cfg, const std::vector<int64_t>& fcs) {
  Builder b(seed, std::move(input));
  for (int64_t c : cfg) {
    if (c == 0) {
      b.maxpool(2, 2, 0);
    } else {
      b.conv(c, 3, 1, 1), b.relu();
    }
  }
  b.flatten();
  for (size_t i = 0; i < fcs.size(); ++i) {
    b.dense(fcs[i]);
    if (i + 1 < fcs.size()) b.relu();
  }
  return b.finish();
}

// ResNet-18 with batch norms folded into the convolutions (conv + bias).
ModelSpec resnet18(uint64_t seed) {
  Builder b(seed, {3, 224, 224});
  b.conv(64, 7, 2, 3), b.relu(), b.maxpool(3, 2, 1);
  int64_t channels = 64;
  for (int64_t stage = 0; stage < 4; ++stage) {
    const int64_t width = 64 << stage;
    for (int block = 0; block < 2; ++block) {
      const int64_t stride = (stage > 0 && block == 0) ? 2 : 1;
      const std::string x = b.value();
      b.conv(width, 3, stride, 1), b.relu();
      const std::string y = b.conv(width, 3, 1, 1);
      std::string shortcut = x;
      if (stride != 1 || channels != width) shortcut = b.conv(width, 1, stride, 0, x);
      b.use(y);
      b.add(y, shortcut), b.relu();
      channels = width;
    }
  }
  b.globalavgpool(), b.flatten();
  b.dense(1000);
  return b.finish();
}

}  // namespace

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names{"mlp", "lenet", "vgg11", "resnet18", "vgg16"};
  return names;
}

ModelSpec build_model(const std::string& name, uint64_t seed) {
  if (name == "mlp") return mlp(seed);
  if (name == "lenet") return lenet(seed);
  if (name == "vgg11") return vgg(seed, {3, 32, 32}, {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0}, {10});
  if (name == "vgg16")
    return vgg(seed, {3, 224, 224}, {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0},
               {4096, 4096, 1000});
  if (name == "resnet18") return resnet18(seed);
  throw std::invalid_argument("unknown model '" + name + "'");
}

}  // namespace bench
