// Small C++ tests of the core without Python: naive-vs-fast forward, conservation, thread determinism, errors.
#include <omp.h>

#include <cmath>
#include <cstdio>
#include <dtd/dtd.hpp>
#include <functional>
#include <random>
#include <string>

#include "check.hpp"
#include "spec_builders.hpp"

namespace {

using dtd_test::check;
using dtd_test::failures;
using dtd_test::layer;
using dtd_test::random_array;

// conv(2->4, 3x3, stride 2, pads 1,0,2,1, dilation 1) -> relu -> maxpool 2 -> flatten -> dense(->5), bias-free.
dtd::ModelSpec small_cnn(std::mt19937& rng) {
  dtd::ModelSpec spec;
  spec.input_name = "x";
  spec.input_shape = {2, 9, 8};
  auto conv = layer("conv", dtd::LayerKind::conv, "x", "c");
  conv.weights["weight"] = random_array({4, 2, 3, 3}, rng, -1, 1);
  conv.ints["strides"] = {2, 2};
  conv.ints["pads"] = {1, 0, 2, 1};
  auto pool = layer("pool", dtd::LayerKind::maxpool, "r", "p");
  pool.ints["kernel"] = {2, 2};
  pool.ints["strides"] = {2, 2};
  auto fc = layer("fc", dtd::LayerKind::dense, "f", "y");
  fc.weights["weight"] = random_array({5, 4 * 2 * 2}, rng, -1, 1);
  spec.layers = {conv, layer("relu", dtd::LayerKind::relu, "c", "r"), pool,
                 layer("flat", dtd::LayerKind::flatten, "p", "f"), fc};
  spec.output = "y";
  return spec;
}

void test_conv_forward_matches_naive() {
  std::mt19937 rng(1);
  dtd::ModelSpec spec = small_cnn(rng);
  spec.layers.resize(1);  // the conv alone
  spec.output = "c";
  dtd::Network<double> net(spec);
  dtd::Tensor<double> x({2, 2, 9, 8});
  for (double& v : x.data) v = std::uniform_real_distribution<double>(-1, 1)(rng);
  const auto& w = spec.layers[0].weights["weight"].data;
  const auto y = net.forward(x);
  check(y.shape == dtd::Shape({2, 4, 5, 4}), "conv output shape " + dtd::to_string(y.shape));
  double err = 0;
  for (int n = 0; n < 2; ++n)
    for (int m = 0; m < 4; ++m)
      for (int oy = 0; oy < 5; ++oy)
        for (int ox = 0; ox < 4; ++ox) {
          double s = 0;
          for (int c = 0; c < 2; ++c)
            for (int i = 0; i < 3; ++i)
              for (int j = 0; j < 3; ++j) {
                const int iy = oy * 2 - 1 + i, ix = ox * 2 + j;
                if (iy < 0 || iy >= 9 || ix < 0 || ix >= 8) continue;
                s += w[((m * 2 + c) * 3 + i) * 3 + j] * x.data[((n * 2 + c) * 9 + iy) * 8 + ix];
              }
          err = std::max(err, std::abs(s - y.data[((n * 4 + m) * 5 + oy) * 4 + ox]));
        }
  check(err < 1e-12, "conv forward vs naive: max error " + std::to_string(err));
}

// Convolutions over 1 and 3 spatial axes against a naive loop (a unit depth/height axis stands for missing ones), in
// float (16 and more output channels: the implicit im2col where the build has dtd's AVX2 kernel) and double.
template <class T>
void test_conv_1d_3d_forward_matches_naive() {
  std::mt19937 rng(4);
  struct Case {
    dtd::Shape in, weight;
    std::vector<int64_t> strides, pads, dilations;
  };
  const Case cases[] = {{{2, 13}, {3, 2, 4}, {2}, {1, 2}, {2}},
                        {{2, 5, 6, 7}, {3, 2, 3, 2, 3}, {2, 1, 2}, {1, 0, 1, 0, 1, 1}, {1, 2, 1}},
                        {{3, 40}, {16, 3, 5}, {1}, {2, 2}, {1}},
                        {{2, 6, 5, 7}, {16, 2, 3, 3, 3}, {1, 2, 1}, {1, 1, 1, 1, 0, 1}, {1, 1, 2}},
                        {{1, 10, 12, 12}, {16, 1, 3, 3, 3}, {1, 1, 1}, {1, 1, 1, 1, 1, 1}, {1, 1, 1}}};
  for (const Case& c : cases) {
    const size_t r = c.in.size() - 1;
    dtd::ModelSpec spec;
    spec.input_name = "x";
    spec.input_shape = c.in;
    auto conv = layer("conv", dtd::LayerKind::conv, "x", "y");
    conv.weights["weight"] = random_array(c.weight, rng, -1, 1);
    conv.ints["strides"] = c.strides;
    conv.ints["pads"] = c.pads;
    conv.ints["dilations"] = c.dilations;
    spec.layers = {conv};
    spec.output = "y";
    dtd::Network<T> net(spec);
    dtd::Shape xs{2};
    xs.insert(xs.end(), c.in.begin(), c.in.end());
    dtd::Tensor<T> x(xs);
    for (T& v : x.data) v = static_cast<T>(std::uniform_real_distribution<double>(-1, 1)(rng));
    const auto y = net.forward(x);
    // three axes (d, h, w), unit leading ones for 1-D
    auto axis3 = [&](const std::vector<int64_t>& v, size_t a, int64_t fill) { return a + r < 3 ? fill : v[a + r - 3]; };
    int64_t in[3], k[3], st[3], pb[3], dl[3], out[3];
    for (size_t a = 0; a < 3; ++a) {
      in[a] = axis3(std::vector<int64_t>(c.in.begin() + 1, c.in.end()), a, 1);
      k[a] = axis3(std::vector<int64_t>(c.weight.begin() + 2, c.weight.end()), a, 1);
      st[a] = axis3(c.strides, a, 1), dl[a] = axis3(c.dilations, a, 1);
      pb[a] = a + r < 3 ? 0 : c.pads[a + r - 3];
      const int64_t pe = a + r < 3 ? 0 : c.pads[a + r - 3 + r];
      out[a] = (in[a] + pb[a] + pe - (k[a] - 1) * dl[a] - 1) / st[a] + 1;
    }
    const int64_t cin = c.in[0], cout = c.weight[0], kk = k[0] * k[1] * k[2], p = out[0] * out[1] * out[2];
    check(dtd::numel(y.shape) == 2 * cout * p && y.shape.size() == c.in.size() + 1,
          "conv output shape " + dtd::to_string(y.shape));
    const auto& w = spec.layers[0].weights["weight"].data;
    double err = 0;
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t m = 0; m < cout; ++m)
        for (int64_t o = 0; o < p; ++o) {
          const int64_t oz = o / (out[1] * out[2]), oy = (o / out[2]) % out[1], ox = o % out[2];
          double s = 0;
          for (int64_t ch = 0; ch < cin; ++ch)
            for (int64_t t = 0; t < kk; ++t) {
              const int64_t tz = t / (k[1] * k[2]), ty = (t / k[2]) % k[1], tx = t % k[2];
              const int64_t iz = oz * st[0] - pb[0] + tz * dl[0], iy = oy * st[1] - pb[1] + ty * dl[1];
              const int64_t ix = ox * st[2] - pb[2] + tx * dl[2];
              if (iz < 0 || iz >= in[0] || iy < 0 || iy >= in[1] || ix < 0 || ix >= in[2]) continue;
              s += static_cast<double>(static_cast<T>(w[static_cast<size_t>((m * cin + ch) * kk + t)])) *
                   static_cast<double>(
                       x.data[static_cast<size_t>((((n * cin + ch) * in[0] + iz) * in[1] + iy) * in[2] + ix)]);
            }
          err = std::max(err, std::abs(s - static_cast<double>(y.data[static_cast<size_t>((n * cout + m) * p + o)])));
        }
    check(err < (sizeof(T) == 8 ? 1e-12 : 1e-4),
          "conv over " + std::to_string(r) + " axes vs naive: max error " + std::to_string(err));
  }
}

// A trace made with the plan keeps z+'s denominator w+ (*) a of float convolutions from one product with the
// weights [w; w+] (Conv2d::apply_with_positive): the relevance must equal, bit for bit, the one computed from a
// trace without the plan (a separate product with w+), over geometries, groups and batches that take each path of the
// convolution (tiles of output positions at batch 1, whole products, samples folded into one product).
void test_fused_positive_denominator_is_bit_identical() {
  std::mt19937 rng(11);
  struct Case {
    dtd::Shape in, weight;
    int64_t group, batch;
  };
  const Case cases[] = {{{8, 40, 40}, {32, 8, 3, 3}, 1, 1},   // 1600 positions: tiles
                        {{8, 12, 12}, {16, 8, 3, 3}, 1, 1},   // 144 positions: one product
                        {{8, 12, 12}, {16, 8, 3, 3}, 1, 5},   // folded samples
                        {{6, 9, 9}, {32, 3, 3, 3}, 2, 3},     // two groups
                        {{4, 30, 30}, {20, 4, 5, 5}, 1, 2}};  // an edge tile of the kernel
  for (const Case& c : cases) {
    dtd::ModelSpec spec;
    spec.input_name = "x";
    spec.input_shape = c.in;
    auto relu0 = layer("relu0", dtd::LayerKind::relu, "x", "a");
    auto conv = layer("conv", dtd::LayerKind::conv, "a", "y");
    conv.weights["weight"] = random_array(c.weight, rng, -1, 1);
    conv.weights["bias"] = random_array({c.weight[0]}, rng, -0.1, 0.1);
    conv.ints["pads"] = {1, 1, 1, 1};
    conv.ints["group"] = {c.group};
    spec.layers = {relu0, conv};
    spec.output = "y";
    dtd::Network<float> net(spec);
    dtd::Shape xs{c.batch};
    xs.insert(xs.end(), c.in.begin(), c.in.end());
    dtd::Tensor<float> x(xs);
    for (float& v : x.data) v = static_cast<float>(std::uniform_real_distribution<double>(-1, 1)(rng));
    std::vector<dtd::RuleSpec> rules(net.size());
    for (auto& rule : rules) rule.kind = dtd::RuleKind::zplus;
    const auto plan = net.prepare(rules);
    const auto fused = net.trace(x, &plan), apart = net.trace(x);
    if (dtd::build_info().own_sgemm)  // else there is no fused path and both traces are the same
      check(fused.kept_set.at(1) == static_cast<int>(dtd::WeightSet::positive),
            "fused z+ denominator: the trace kept no product for input " + dtd::to_string(xs));
    check(fused.values.back().data == apart.values.back().data, "fused z+ denominator: forward differs");
    dtd::Tensor<float> r(fused.values.back().shape);
    for (float& v : r.data) v = static_cast<float>(std::uniform_real_distribution<double>(0, 1)(rng));
    const auto r1 = net.relevance(fused, r, plan), r2 = net.relevance(apart, r, plan);
    check(r1.data == r2.data, "fused z+ denominator: relevance differs for input " + dtd::to_string(xs));
  }
}

// w^2 on the first layer, z+ above (the "real" preset), eps 1e-12 so that the stabilizers absorb nothing visible.
dtd::Tensor<double> explain(const dtd::Network<double>& net, const dtd::Tensor<double>& x, double* logit) {
  const dtd::Explainer<double> explainer(net,
                                         dtd::ExplainRules::from_preset("real", std::nullopt, std::nullopt, 1e-12));
  auto ex = explainer.explain(x);
  *logit = ex.logits.data[static_cast<size_t>(ex.targets[0])];
  return std::move(ex.relevance);
}

void test_conservation_and_determinism() {
  std::mt19937 rng(2);
  dtd::Network<double> net(small_cnn(rng));
  dtd::Tensor<double> x({1, 2, 9, 8});
  for (double& v : x.data) v = std::uniform_real_distribution<double>(-1, 1)(rng);
  double logit = 0;
  omp_set_num_threads(1);
  auto r1 = explain(net, x, &logit);
  omp_set_num_threads(4);
  auto r4 = explain(net, x, &logit);
  double total = 0;
  bool positive = true;
  for (double v : r1.data) total += v, positive &= v >= 0 || logit < 0;
  check(std::abs(total - logit) <= 1e-9 * std::abs(logit),
        "w2/z+ conservation: " + std::to_string(total) + " vs logit " + std::to_string(logit));
  check(positive, "w2/z+ positivity");
  check(r1.data == r4.data, "1 vs 4 threads bit-identical");
}

void expect_throw(const std::function<void()>& f, const std::string& needle, const std::string& what) {
  try {
    f();
    check(false, what + ": no exception");
  } catch (const std::invalid_argument& e) {
    check(std::string(e.what()).find(needle) != std::string::npos,
          what + ": message '" + e.what() + "' lacks '" + needle + "'");
  }
}

void test_errors() {
  std::mt19937 rng(3);
  dtd::ModelSpec bad = small_cnn(rng);
  bad.layers[4].weights["weight"] = random_array({5, 7}, rng, -1, 1);
  expect_throw([&] { dtd::Network<float> net(bad); }, "fc", "wrong dense weight shape");
  dtd::Network<float> net(small_cnn(rng));
  expect_throw([&] { net.forward(dtd::Tensor<float>({1, 3, 9, 8})); }, "expected [N, 2, 9, 8]", "wrong input shape");
  // a misspelt attribute is an error naming it and the keys the kind takes, not an unstrided conv
  dtd::ModelSpec typo = small_cnn(rng);
  typo.layers[0].ints.erase("strides");
  typo.layers[0].ints["stride"] = {2, 2};
  expect_throw([&] { dtd::Network<float> bad_net(typo); },
               "conv layer 'conv': unknown attribute 'stride' (conv takes int attributes: strides, pads, dilations, "
               "group, auto_pad)",
               "misspelt conv attribute");
  dtd::ModelSpec pool_float = small_cnn(rng);
  pool_float.layers[2].floats["kernel"] = 2;
  expect_throw([&] { dtd::Network<float> bad_net(pool_float); },
               "maxpool layer 'pool': unknown attribute 'kernel' (maxpool takes float attributes: none)",
               "an int attribute given as a float");
}

// Shapes whose element counts, extents or MAC counts do not fit in int64 are a ModelError naming the layer and the
// attribute, never a wrapped number (issue 10, defects 1-3); declared activations beyond max_activation likewise.
void test_checked_shape_arithmetic() {
  std::mt19937 rng(4);
  const int64_t big = int64_t{1} << 62;
  // conv pads so large that the padded extent overflows int64
  dtd::ModelSpec pads = small_cnn(rng);
  pads.layers[0].ints["pads"] = {big, big, big, big};
  expect_throw([&] { dtd::Network<float> net(pads); }, "conv layer 'conv': pads", "conv pads overflowing the extent");
  // pads that fit per axis, but whose output element count overflows (the SIGSEGV of defect 1)
  dtd::ModelSpec count = small_cnn(rng);
  count.layers[0].ints["pads"] = {int64_t{1} << 40, int64_t{1} << 40, 0, 0};
  count.layers[0].ints["strides"] = {1, 1};
  expect_throw([&] { dtd::Network<float> net(count); }, "conv layer 'conv'", "conv output element count");
  // dilated kernel extent
  dtd::ModelSpec dil = small_cnn(rng);
  dil.layers[0].ints["dilations"] = {big, 1};
  expect_throw([&] { dtd::Network<float> net(dil); }, "dilations", "dilated kernel extent");
  // [2^32, 2^32] -> flatten -> dense: the product overflows in flatten (the SIGFPE of defect 2)
  dtd::ModelSpec flat;
  flat.input_name = "x";
  flat.input_shape = {int64_t{1} << 32, int64_t{1} << 32};
  flat.layers = {layer("flat", dtd::LayerKind::flatten, "x", "f"), layer("fc", dtd::LayerKind::dense, "f", "y")};
  flat.layers[1].weights["weight"] = random_array({2, 3}, rng, -1, 1);
  flat.output = "y";
  expect_throw([&] { dtd::Network<float> net(flat); }, "does not fit in a 64-bit integer", "flatten overflow");
  // a declared input beyond the activation limit is refused at build time, and the limit can be raised
  dtd::ModelSpec wide;
  wide.input_name = "x";
  wide.input_shape = {100000, 1000000};
  wide.layers = {layer("relu", dtd::LayerKind::relu, "x", "y")};
  wide.output = "y";
  expect_throw([&] { dtd::Network<float> net(wide); }, "more than the limit", "input beyond max_activation");
  dtd::ModelSpec small = wide;
  small.input_shape = {10, 10};
  small.max_activation = 50;
  expect_throw([&] { dtd::Network<float> net(small); }, "limit of 50", "lowered max_activation");
  small.max_activation = 100;
  dtd::Network<float> ok(small);
  check(ok.output_shape() == dtd::Shape({10, 10}), "max_activation admits a value of exactly the limit");
  // a pad layer whose padded axis is beyond the limit is refused before its index table is built
  dtd::ModelSpec pad;
  pad.input_name = "x";
  pad.input_shape = {3, 4};
  pad.layers = {layer("pad", dtd::LayerKind::pad, "x", "y")};
  pad.layers[0].ints["pads"] = {0, 0, int64_t{1} << 40, 0, 0, 0};
  pad.output = "y";
  expect_throw([&] { dtd::Network<float> net(pad); }, "pad layer 'pad'", "pad beyond the limit");
  pad.layers[0].ints["pads"] = {0, 0, INT64_MAX, 0, 0, 0};
  expect_throw([&] { dtd::Network<float> net(pad); }, "does not fit in a 64-bit integer", "pad overflow");
  // numel itself
  expect_throw([&] { dtd::numel({big, 4}); }, "does not fit", "numel overflow");
  // no message shows a wrapped (negative) extent
  try {
    dtd::Network<float> net(pads);
  } catch (const std::invalid_argument& e) {
    check(std::string(e.what()).find("-92233") == std::string::npos, std::string("wrapped number in ") + e.what());
  }
}

// dtd::build_info() describes this build: dtd::core is the native or the baseline variant (cpp/CMakeLists.txt).
void test_build_info() {
  const dtd::BuildInfo info = dtd::build_info();
  check(info.variant == "native" || info.variant == "baseline", "build_info variant " + info.variant);
  check(!info.compiler.empty() && !info.eigen_version.empty(), "build_info compiler and Eigen version");
  check(info.openmp >= 201511, "build_info OpenMP version " + std::to_string(info.openmp));
  bool avx2 = false;
  for (const auto& s : info.instruction_sets) avx2 = avx2 || s == "AVX2";
  // dtd's SGEMM kernel is compiled exactly where the core has AVX2 + FMA and no AVX-512 (src/gemm.cpp)
  check(!info.own_sgemm || avx2, "build_info: own SGEMM kernel without AVX2");
}

}  // namespace

int main() {
  test_build_info();
  test_conv_forward_matches_naive();
  test_conv_1d_3d_forward_matches_naive<float>();
  test_conv_1d_3d_forward_matches_naive<double>();
  test_conservation_and_determinism();
  test_fused_positive_denominator_is_bit_identical();
  test_errors();
  test_checked_shape_arithmetic();
  if (failures == 0) std::printf("all C++ core tests passed\n");
  return failures == 0 ? 0 : 1;
}
