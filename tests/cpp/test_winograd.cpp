// Winograd F(2x2, 3x3) (Algorithm::winograd) against the exact products of the same layer: the forward with every
// weight set, the transposed pass on its own, the z+ guard (no negative denominator, exact zeros kept) on sparse
// input, the transposed pass with guarded outputs, 1 vs 3 threads bit for bit, and the errors.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <dtd/dtd.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.hpp"
#include "spec_builders.hpp"

namespace {

using dtd_test::check;
using dtd_test::failures;
using dtd_test::layer;
using dtd_test::random_array;

struct Geometry {
  int64_t c, h, w, m;
  std::vector<int64_t> pads;  // top, left, bottom, right
};

dtd::ModelSpec one_conv(const Geometry& g, std::mt19937& rng) {
  dtd::ModelSpec spec;
  spec.input_name = "x";
  spec.input_shape = {g.c, g.h, g.w};
  auto conv = layer("conv", dtd::LayerKind::conv, "x", "y");
  conv.weights["weight"] = random_array({g.m, g.c, 3, 3}, rng, -1, 1);
  conv.ints["pads"] = g.pads;
  spec.layers = {conv};
  spec.output = "y";
  return spec;
}

template <class A, class B>
double rel_l2(const A& a, const B& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

std::vector<float> uniform(size_t n, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// ReLU-like: 90 % zeros, and a whole zero block in every channel.
std::vector<float> sparse(int64_t n, int64_t c, int64_t h, int64_t w, std::mt19937& rng) {
  std::vector<float> v = uniform(static_cast<size_t>(n * c * h * w), rng, 0, 2);
  std::uniform_real_distribution<float> u(0, 1);
  for (int64_t i = 0; i < n * c * h * w; ++i) {
    const int64_t y = (i / w) % h, x = i % w;
    if (u(rng) < 0.9f || (y >= h / 4 && y < h / 2 && x < w / 2)) v[static_cast<size_t>(i)] = 0;
  }
  return v;
}

void test_products(const Geometry& g, std::mt19937& rng) {
  const std::string name = "geometry c" + std::to_string(g.c) + " " + std::to_string(g.h) + "x" + std::to_string(g.w) +
                           " m" + std::to_string(g.m) + " pads " + std::to_string(g.pads[0]) +
                           std::to_string(g.pads[1]) + std::to_string(g.pads[2]) + std::to_string(g.pads[3]);
  dtd::Network<float> net(one_conv(g, rng));
  const auto& conv = static_cast<const dtd::LinearLayer<float>&>(net.layer(0));
  check(conv.winograd_ok(), name + ": qualifies");
  const int64_t n = 2, in = n * conv.in_size(), out = n * conv.out_size();
  const std::vector<float> x = uniform(static_cast<size_t>(in), rng, -1, 1);
  const std::vector<float> gr = uniform(static_cast<size_t>(out), rng, -1, 1);
  for (auto set : {dtd::WeightSet::plain, dtd::WeightSet::positive, dtd::WeightSet::negative, dtd::WeightSet::square}) {
    std::vector<float> y(static_cast<size_t>(out)), yw(y.size());
    conv.apply_set(x.data(), n, set, y.data());
    conv.winograd_apply(x.data(), n, set, yw.data());
    check(rel_l2(yw, y) < 1e-5, name + ": forward " + std::to_string(int(set)) + " " + std::to_string(rel_l2(yw, y)));
    std::vector<float> t(static_cast<size_t>(in)), tw(t.size());
    conv.apply_transposed_set(gr.data(), n, set, t.data());
    conv.winograd_apply_transposed(gr.data(), n, set, tw.data(), nullptr);
    check(rel_l2(tw, t) < 1e-5,
          name + ": transposed " + std::to_string(int(set)) + " " + std::to_string(rel_l2(tw, t)));
  }
  std::vector<float> y(static_cast<size_t>(out)), z(y.size()), yw(y.size()), zw(y.size());
  conv.apply_set(x.data(), n, dtd::WeightSet::plain, y.data());
  conv.apply_set(x.data(), n, dtd::WeightSet::positive, z.data());
  conv.winograd_apply_with_positive(x.data(), n, yw.data(), zw.data());
  check(rel_l2(yw, y) < 1e-5 && rel_l2(zw, z) < 1e-5, name + ": forward with positive");
}

// z+ = w+ (*) x, x >= 0 and sparse: after the guard no value is negative and the zeros are exactly the exact
// product's; the transposed pass with the guarded outputs matches the exact one where g holds huge values there.
void test_guard(std::mt19937& rng) {
  const Geometry g{16, 20, 18, 32, {1, 1, 1, 1}};
  dtd::Network<float> net(one_conv(g, rng));
  const auto& conv = static_cast<const dtd::LinearLayer<float>&>(net.layer(0));
  const int64_t n = 2, out = n * conv.out_size();
  const std::vector<float> x = sparse(n, g.c, g.h, g.w, rng);
  std::vector<float> z(static_cast<size_t>(out)), zw(z.size());
  conv.apply_set(x.data(), n, dtd::WeightSet::positive, z.data());
  conv.winograd_apply(x.data(), n, dtd::WeightSet::positive, zw.data());
  int64_t off = 0, exact_zeros = 0;
  for (size_t j = 0; j < z.size(); ++j) {
    off += (z[j] == 0) != (zw[j] == 0) || zw[j] < 0;
    exact_zeros += z[j] == 0;
  }
  std::printf("sparse z+: %lld exact zeros of %lld, %lld wrong in sign or zero before the guard\n",
              static_cast<long long>(exact_zeros), static_cast<long long>(out), static_cast<long long>(off));
  check(exact_zeros > out / 20 && off > 0, "sparse input gives exact zero denominators");
  dtd::ExactOutputs exact;
  conv.winograd_guard(x.data(), n, zw.data(), exact);
  int64_t negative = 0, zeros_differ = 0;
  for (size_t j = 0; j < z.size(); ++j) {
    negative += zw[j] < 0;
    zeros_differ += (z[j] == 0) != (zw[j] == 0);
  }
  check(negative == 0, "guard: no negative z+ (" + std::to_string(negative) + ")");
  check(zeros_differ == 0, "guard: exact zeros kept (" + std::to_string(zeros_differ) + " differ)");
  check(rel_l2(zw, z) < 1e-5, "guard: z+ close to exact");
  check(!exact.index.empty() && exact.index.size() == exact.nonzero.size(), "guard lists its outputs");
  // s = 1 / stab(z): huge (1e6) where z is exactly 0; those terms are exactly 0 in the exact relevance
  // R = x * (W+^T s), so compare x * W+^T s.
  std::vector<float> s(z.size());
  for (size_t j = 0; j < s.size(); ++j) s[j] = 1.0f / (zw[j] + 1e-6f);
  std::vector<float> c(x.size()), cw(x.size());
  conv.apply_transposed_set(s.data(), n, dtd::WeightSet::positive, c.data());
  conv.winograd_apply_transposed(s.data(), n, dtd::WeightSet::positive, cw.data(), &exact);
  for (size_t i = 0; i < x.size(); ++i) c[i] *= x[i], cw[i] *= x[i];
  check(rel_l2(cw, c) < 1e-5, "guarded transposed pass: " + std::to_string(rel_l2(cw, c)));
  // without the guard's list the huge s spreads rounding errors over its tiles
  std::vector<float> cu(x.size());
  conv.winograd_apply_transposed(s.data(), n, dtd::WeightSet::positive, cu.data(), nullptr);
  for (size_t i = 0; i < x.size(); ++i) cu[i] *= x[i];
  std::printf("x * W+^T s: rel. L2 error %.3g with the guard's list, %.3g without\n", rel_l2(cw, c), rel_l2(cu, c));
}

// A VGG-like net: conv 3x3 stacks with ReLU, max pooling, dense.
dtd::ModelSpec vgg_like(std::mt19937& rng) {
  dtd::ModelSpec spec;
  spec.input_name = "x";
  spec.input_shape = {3, 16, 16};
  auto c1 = layer("c1", dtd::LayerKind::conv, "x", "c1");
  c1.weights["weight"] = random_array({16, 3, 3, 3}, rng, -0.5, 0.5);
  c1.weights["bias"] = random_array({16}, rng, -0.1, 0.1);
  c1.ints["pads"] = {1, 1, 1, 1};
  auto c2 = layer("c2", dtd::LayerKind::conv, "r1", "c2");
  c2.weights["weight"] = random_array({32, 16, 3, 3}, rng, -0.2, 0.2);
  c2.ints["pads"] = {1, 1, 1, 1};
  auto pool = layer("pool", dtd::LayerKind::maxpool, "r2", "p");
  pool.ints["kernel"] = {2, 2};
  pool.ints["strides"] = {2, 2};
  auto fc = layer("fc", dtd::LayerKind::dense, "f", "y");
  fc.weights["weight"] = random_array({5, 32 * 8 * 8}, rng, -0.05, 0.05);
  spec.layers = {
      c1,   layer("relu1", dtd::LayerKind::relu, "c1", "r1"), c2, layer("relu2", dtd::LayerKind::relu, "c2", "r2"),
      pool, layer("flat", dtd::LayerKind::flatten, "p", "f"), fc};
  spec.output = "y";
  return spec;
}

void test_explainer(std::mt19937& rng) {
  const dtd::ModelSpec spec = vgg_like(rng);
  dtd::Network<float> net(spec);
  const dtd::Explainer<float> ex(
      net, dtd::ExplainRules::from_preset("bounded", dtd::Array{{}, {0.0}}, dtd::Array{{}, {1.0}}));
  dtd::Tensor<float> x({3, 3, 16, 16}, 0.0f);
  const std::vector<float> xv = uniform(x.data.size(), rng, 0, 1);
  std::copy(xv.begin(), xv.end(), x.data.begin());
  const auto exact = ex.explain(x);
  dtd::set_num_threads(1);
  const auto one = ex.explain(x, dtd::Target::argmax(), false, dtd::Algorithm::winograd);
  dtd::set_num_threads(3);
  const auto three = ex.explain(x, dtd::Target::argmax(), false, dtd::Algorithm::winograd);
  check(one.relevance.data == three.relevance.data && one.logits.data == three.logits.data,
        "winograd explanation bit-identical for 1 and 3 threads");
  check(rel_l2(one.relevance.data, exact.relevance.data) < 1e-4,
        "winograd explanation close to the exact one: " +
            std::to_string(rel_l2(one.relevance.data, exact.relevance.data)));
  check(one.relevance.data != exact.relevance.data, "winograd explanation computed by another path");
  dtd::Network<double> net64(spec);
  const dtd::Explainer<double> ex64(net64, dtd::ExplainRules::from_preset("real"));
  dtd::Tensor<double> x64({1, 3, 16, 16}, 0.5);
  bool threw = false;
  try {
    ex64.explain(x64, dtd::Target::argmax(), false, dtd::Algorithm::winograd);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  check(threw, "float64 with winograd throws invalid_argument");
  threw = false;
  try {
    dtd::parse_algorithm("winograd4x4");
  } catch (const std::invalid_argument& e) {
    threw = std::string(e.what()).find("'exact' or 'winograd'") != std::string::npos;
  }
  check(threw && dtd::parse_algorithm("winograd") == dtd::Algorithm::winograd, "parse_algorithm");
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  for (const Geometry& g :
       {Geometry{3, 9, 11, 8, {1, 1, 1, 1}}, Geometry{5, 8, 8, 17, {0, 0, 0, 0}}, Geometry{4, 7, 6, 6, {2, 2, 2, 2}},
        Geometry{6, 5, 9, 4, {0, 1, 2, 0}}, Geometry{2, 1, 7, 3, {1, 1, 1, 1}}, Geometry{64, 14, 14, 48, {1, 1, 1, 1}}})
    test_products(g, rng);
  test_guard(rng);
  test_explainer(rng);
  if (failures) std::printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
