// dtd::Explainer without Python: presets and composites, targets, the z^beta bounds and their check, the
// conservation report, the messages dtd.explain shows, and one network explained by 8 threads at once with results
// bit-identical to sequential calls.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <dtd/dtd.hpp>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "check.hpp"
#include "spec_builders.hpp"

namespace {

using dtd_test::check;
using dtd_test::failures;
using dtd_test::layer;
using dtd_test::random_array;

dtd::Array scalar(double v) {
  return dtd::Array{{}, {v}};
}

// conv(2->4, 3x3, pad 1) -> relu -> maxpool 2 -> conv(4->4, 3x3, pad 1) -> relu -> add(residual) -> flatten ->
// dense(->5); bias-free, so that relevance is conserved exactly up to the stabilizers.
dtd::ModelSpec residual_cnn(std::mt19937& rng) {
  dtd::ModelSpec spec;
  spec.input_name = "x";
  spec.input_shape = {2, 8, 8};
  auto conv1 = layer("conv1", dtd::LayerKind::conv, {"x"}, "c1");
  conv1.weights["weight"] = random_array({4, 2, 3, 3}, rng, -1, 1);
  conv1.ints["pads"] = {1, 1, 1, 1};
  auto pool = layer("pool", dtd::LayerKind::maxpool, {"r1"}, "p");
  pool.ints["kernel"] = {2, 2};
  pool.ints["strides"] = {2, 2};
  auto conv2 = layer("conv2", dtd::LayerKind::conv, {"p"}, "c2");
  conv2.weights["weight"] = random_array({4, 4, 3, 3}, rng, -0.5, 1);
  conv2.ints["pads"] = {1, 1, 1, 1};
  auto fc = layer("fc", dtd::LayerKind::dense, {"f"}, "y");
  fc.weights["weight"] = random_array({5, 4 * 4 * 4}, rng, -1, 1);
  spec.layers = {conv1,
                 layer("relu1", dtd::LayerKind::relu, {"c1"}, "r1"),
                 pool,
                 conv2,
                 layer("relu2", dtd::LayerKind::relu, {"c2"}, "r2"),
                 layer("add", dtd::LayerKind::add, {"r2", "p"}, "s"),
                 layer("flat", dtd::LayerKind::flatten, {"s"}, "f"),
                 fc};
  spec.output = "y";
  return spec;
}

// input normalisation in the graph: affine (x - 0.5) * 2 before an mlp, so bounds map through it
dtd::ModelSpec normalised_mlp(std::mt19937& rng) {
  dtd::ModelSpec spec;
  spec.input_name = "x";
  spec.input_shape = {6};
  auto norm = layer("norm", dtd::LayerKind::affine, {"x"}, "n");
  norm.weights["scale"] = dtd::Array{{1}, {2.0}};
  norm.weights["shift"] = dtd::Array{{1}, {-1.0}};
  auto fc1 = layer("fc1", dtd::LayerKind::dense, {"n"}, "h");
  fc1.weights["weight"] = random_array({8, 6}, rng, -1, 1);
  auto fc2 = layer("fc2", dtd::LayerKind::dense, {"r"}, "y");
  fc2.weights["weight"] = random_array({3, 8}, rng, -1, 1);
  spec.layers = {norm, fc1, layer("relu", dtd::LayerKind::relu, {"h"}, "r"), fc2};
  spec.output = "y";
  return spec;
}

template <class T>
dtd::Tensor<T> uniform(const dtd::Shape& shape, std::mt19937& rng, double lo, double hi) {
  dtd::Tensor<T> x(shape);
  std::uniform_real_distribution<double> u(lo, hi);
  for (T& v : x.data) v = static_cast<T>(u(rng));
  return x;
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

double sum(const std::vector<double>& v, size_t from = 0, size_t step = 1) {
  double s = 0;
  for (size_t i = from; i < v.size(); i += step) s += v[i];
  return s;
}

// The presets give the rules RULES.md names, the report is conservative layer by layer for a bias-free net (eps
// tiny, float64), and the input relevance sums to the explained logit.
void test_presets_report_conservation() {
  std::mt19937 rng(11);
  dtd::Network<double> net(residual_cnn(rng));
  const auto x = uniform<double>({3, 2, 8, 8}, rng, 0, 1);
  const auto bounded = dtd::ExplainRules::from_preset("bounded", scalar(0), scalar(1), 1e-12);
  dtd::Explainer<double> e(net, bounded);
  const std::vector<std::string> expected{"zbox", "-", "winner_take_all", "zplus", "-", "zplus", "-", "zplus"};
  check(e.rule_names() == expected, "bounded preset rule names");
  const auto ex = e.explain(x, dtd::Target::argmax(), true);
  check(ex.relevance.shape == x.shape, "relevance shape " + dtd::to_string(ex.relevance.shape));
  check(ex.logits.shape == dtd::Shape({3, 5}), "logits shape");
  check(ex.has_targets && ex.targets_shape == dtd::Shape({3}), "argmax targets [N]");
  check(ex.layers.size() == net.size(), "one report entry per layer");
  for (int64_t s = 0; s < 3; ++s) {
    const double logit = ex.logits.data[static_cast<size_t>(s * 5 + ex.targets[static_cast<size_t>(s)])];
    double total = 0;
    for (int64_t k = 0; k < x.sample_size(); ++k)
      total += ex.relevance.data[static_cast<size_t>(s * x.sample_size() + k)];
    check(std::abs(total - logit) <= 1e-8 * std::abs(logit),
          "bounded: sum R " + std::to_string(total) + " vs logit " + std::to_string(logit));
  }
  for (const auto& lr : ex.layers) {
    check(lr.relevance_out.size() == 3 && lr.relevance_in.size() == 3, "report per sample");
    const double out = sum(lr.relevance_out), in = sum(lr.relevance_in);
    check(std::abs(out - in) <= 1e-8 * std::abs(out),
          "layer " + lr.name + " conserves: " + std::to_string(out) + " vs " + std::to_string(in));
  }
  // deep_taylor: bounded with bounds, real without
  check(dtd::Explainer<double>(net, dtd::ExplainRules::from_preset("deep_taylor", scalar(0), scalar(1))).rule_names() ==
            dtd::Explainer<double>(net, dtd::ExplainRules::from_preset("bounded", scalar(0), scalar(1))).rule_names(),
        "deep_taylor with bounds is bounded");
  check(dtd::Explainer<double>(net, dtd::ExplainRules::from_preset("deep_taylor")).rule_names()[0] == "wsquare",
        "deep_taylor without bounds is real");
  check(dtd::Explainer<double>(net, dtd::ExplainRules::from_preset("positive")).rule_names()[0] == "zplus",
        "positive preset");
  const auto eps_names = dtd::Explainer<double>(net, dtd::ExplainRules::from_preset("epsilon")).rule_names();
  check(eps_names[0] == "epsilon" && eps_names[7] == "epsilon", "epsilon preset");
}

// Overrides by name, index and kind; the modes; the rule-resolution errors and their messages.
void test_composite_overrides_and_errors() {
  std::mt19937 rng(12);
  dtd::Network<double> net(residual_cnn(rng));
  dtd::ExplainRules r;
  r.composite.first = dtd::Rule::wsquare();
  r.composite.overrides.emplace_back(dtd::LayerKey::by_name("conv"), dtd::Rule::epsilon(0.1));
  r.composite.overrides.emplace_back(dtd::LayerKey::by_index(-1), dtd::Rule::gamma_rule(0.5));
  r.composite.maxpool = "proportional";
  r.composite.add = "proportional";
  const dtd::Explainer<double> e(net, r);
  const auto& n = e.rule_names();
  check(n[0] == "epsilon" && n[3] == "epsilon" && n[7] == "gamma" && n[2] == "proportional" && n[5] == "proportional",
        "kind beats first, index beats default, modes: " + n[0] + " " + n[3] + " " + n[7] + " " + n[2]);
  const auto ids = dtd::resolve_rules(net, r.composite);
  check(ids == std::vector<int>({2, -1, -1, 2, -1, -1, -1, 3}), "resolve_rules ids");

  auto with = [&](auto edit) {
    dtd::ExplainRules b;
    edit(b.composite);
    return [&net, b] { dtd::Explainer<double> bad(net, b); };
  };
  expect_throw(with([](dtd::Composite& c) { c.avgpool = "max"; }),
               "avgpool must be one of ('proportional', 'flat'), got 'max'", "avgpool mode");
  expect_throw(with([](dtd::Composite& c) { c.overrides.emplace_back(dtd::LayerKey::by_name("nope"), dtd::Rule{}); }),
               "override key 'nope' names no layer; use a layer name, an index or a kind ('dense', 'conv'); layers: "
               "['add', 'conv1', 'conv2', 'fc', 'flat', 'pool', 'relu1', 'relu2']",
               "unknown override key");
  expect_throw(with([](dtd::Composite& c) { c.overrides.emplace_back(dtd::LayerKey::by_index(8), dtd::Rule{}); }),
               "override index 8 is out of range: the model has 8 layers", "override index");
  expect_throw(with([](dtd::Composite& c) { c.overrides.emplace_back(dtd::LayerKey::by_name("pool"), dtd::Rule{}); }),
               "ZPlus cannot apply to maxpool layer 'pool' (index 2): only dense and conv layers take rules",
               "rule on a pooling layer");
  expect_throw(
      with([](dtd::Composite& c) { c.overrides.emplace_back(dtd::LayerKey::by_name("affine"), dtd::Rule::flat()); }),
      "Flat cannot apply to affine layers: they take only Epsilon", "affine kind override");
  expect_throw(with([](dtd::Composite& c) { c.default_rule = dtd::Rule::zplus(-1.0); }),
               "ZPlus: eps must be finite and >= 0, got -1.0", "negative eps");
  expect_throw(with([](dtd::Composite& c) { c.default_rule = dtd::Rule::alpha_beta(2.0, 0.5); }),
               "AlphaBeta: alpha - beta must be 1 (conservation), got alpha 2.0, beta 0.5", "alpha - beta");
  expect_throw([&] { dtd::preset("dtd"); }, "unknown rules preset 'dtd'; presets: deep_taylor, bounded, real",
               "unknown preset");
  expect_throw([&] { dtd::preset("bounded", scalar(0)); }, "the 'bounded' preset needs both low and high",
               "bounded without high");
  dtd::ExplainRules nobounds;
  nobounds.composite.first = dtd::Rule::zbox();
  expect_throw([&] { dtd::Explainer<double> bad(net, nobounds); },
               "ZBox on layer 'conv1' needs bounds: pass low= and high=", "ZBox without bounds");
}

// Bounds: per-channel vectors equal full arrays, the box check names how many values are out and by how much,
// bounds that do not broadcast or are crossed are refused, and bounds map through an input normalisation.
void test_bounds() {
  std::mt19937 rng(13);
  dtd::Network<double> net(residual_cnn(rng));
  const auto x = uniform<double>({2, 2, 8, 8}, rng, 0, 1);
  const auto per_channel = dtd::ExplainRules::from_preset("bounded", dtd::Array{{2}, {0.0, -0.5}}, scalar(1));
  dtd::Array full{{2, 8, 8}, std::vector<double>(128, 0.0)};
  for (size_t k = 64; k < 128; ++k) full.data[k] = -0.5;
  const auto as_full = dtd::ExplainRules::from_preset("bounded", full, scalar(1));
  check(dtd::Explainer<double>(net, per_channel).explain(x).relevance.data ==
            dtd::Explainer<double>(net, as_full).explain(x).relevance.data,
        "per-channel bounds equal the broadcast array");
  auto outside = x;
  outside.data[5] = 1.5;
  outside.data[9] = -0.25;
  expect_throw([&] { dtd::Explainer<double>(net, per_channel).explain(outside); },
               "2 values of the input lie outside [low, high] (by up to 0.5); the z^beta rule needs low <= x <= high",
               "x outside the box");
  expect_throw(
      [&] {
        dtd::Explainer<double>(net, dtd::ExplainRules::from_preset("bounded", dtd::Array{{3}, {0, 0, 0}}, scalar(1)));
      },
      "low has shape [3], which does not broadcast to the input shape [2, 8, 8]", "bounds of wrong shape");
  expect_throw([&] { dtd::Explainer<double>(net, dtd::ExplainRules::from_preset("bounded", scalar(1), scalar(0))); },
               "low > high for the z^beta bounds (first at flat index 0: 1.0 > 0.0)", "low above high");

  // through the affine layer: the bounds [0, 1] on x become [-1, 1] on the dense layer's input
  dtd::Network<double> mlp64(normalised_mlp(rng));
  std::mt19937 same(14);
  dtd::Network<float> mlp32(normalised_mlp(same));
  const auto rules = dtd::ExplainRules::from_preset("bounded", scalar(0), scalar(1));
  check(dtd::Explainer<float>::maps_bounds(mlp32, rules), "bounds map through the affine layer");
  expect_throw([&] { dtd::Explainer<float> bad(mlp32, rules); }, "needs the float64 network", "float32 needs float64");
  const auto xm = uniform<double>({4, 6}, rng, 0, 1);
  const auto ex = dtd::Explainer<double>(mlp64, rules).explain(xm, dtd::Target::argmax(), true);
  check(ex.layers[1].rule == "zbox", "first dense layer gets z^beta");
  auto bad = xm;
  bad.data[0] = 1.1;
  expect_throw([&] { dtd::Explainer<double>(mlp64, rules).explain(bad); }, "1 values of the input lie outside",
               "mapped bounds check the raw input");
}

// Targets: one class, one per sample, K per sample (one forward pass), an output relevance as given; and the
// target errors.
void test_targets() {
  std::mt19937 rng(15);
  dtd::Network<double> net(residual_cnn(rng));
  const auto x = uniform<double>({3, 2, 8, 8}, rng, 0, 1);
  const dtd::Explainer<double> e(net, dtd::ExplainRules::from_preset("bounded", scalar(0), scalar(1)));
  const auto multi = e.explain(x, dtd::Target::k_per_sample({0, 4, 1, 3, 2, -1}, 2), true);
  const int64_t per = x.sample_size();
  check(multi.relevance.shape == dtd::Shape({3, 2, 2, 8, 8}), "K targets: [N, K, ...]");
  check(multi.targets == std::vector<int64_t>({0, 4, 1, 3, 2, 4}) && multi.targets_shape == dtd::Shape({3, 2}),
        "negative classes count from the end");
  check(multi.layers[0].relevance_out.size() == 6, "report [N, K]");
  for (int64_t k = 0; k < 2; ++k) {
    std::vector<int64_t> column;
    for (int64_t s = 0; s < 3; ++s) column.push_back(multi.targets[static_cast<size_t>(s * 2 + k)]);
    const auto one = e.explain(x, dtd::Target::per_sample(column));
    bool same = true;
    for (int64_t s = 0; s < 3; ++s)
      for (int64_t i = 0; i < per; ++i)
        same &= one.relevance.data[static_cast<size_t>(s * per + i)] ==
                multi.relevance.data[static_cast<size_t>((s * 2 + k) * per + i)];
    check(same, "K per sample equals one pass per column, bit for bit");
  }
  // an output relevance with the target's logit equals the class target
  const auto by_class = e.explain(x, dtd::Target::one_class(2));
  std::vector<double> r(15, 0.0);
  for (int64_t s = 0; s < 3; ++s)
    r[static_cast<size_t>(s * 5 + 2)] = by_class.logits.data[static_cast<size_t>(s * 5 + 2)];
  const auto given = e.explain(x, dtd::Target::output_relevance({3, 5}, r));
  const auto start = dtd::output_relevance(by_class.logits, dtd::Target::one_class(2));
  check(start.size() == 1 && std::equal(r.begin(), r.end(), start[0].data.begin()),
        "output_relevance: the target's logit, else 0");
  check(!given.has_targets && given.relevance.data == by_class.relevance.data, "output relevance as given");
  expect_throw([&] { e.explain(x, dtd::Target::one_class(5)); },
               "target class 5 is out of range for a model with 5 outputs", "class out of range");
  expect_throw([&] { e.explain(x, dtd::Target::per_sample({1, 2})); }, "got 2 targets for a batch of 3 samples",
               "target count");
  expect_throw([&] { e.explain(x, dtd::Target::output_relevance({3, 4}, std::vector<double>(12))); },
               "output relevance has shape [3, 4], expected [3, 5]", "output relevance shape");
  auto nan = x;
  nan.data[70] = std::nan("");
  expect_throw([&] { e.explain(nan); },
               "the input holds 1 NaN or infinite value(s) of 384, the first at index [0, 1, 0, 6] (nan)", "NaN input");
  // sensitivity: the gradient of a linear-in-x ReLU net times x sums to the logit (bias-free)
  const auto s = dtd::Explainer<double>::sensitivity(net).explain(x, dtd::Target::one_class(1));
  double gx = 0;
  for (int64_t i = 0; i < per; ++i) gx += s.relevance.data[static_cast<size_t>(i)] * x.data[static_cast<size_t>(i)];
  check(std::abs(gx - s.logits.data[1]) <= 1e-9 * std::abs(s.logits.data[1]), "gradient x input sums to the logit");
}

// One network and one Explainer shared by 8 threads, each explaining its own requests at once: every result is
// bit-identical to the same call made sequentially (float32 and float64, several OpenMP thread counts).
template <class T>
void test_concurrent_explain() {
  std::mt19937 rng(16);
  const dtd::ModelSpec spec = residual_cnn(rng);
  const dtd::Network<T> net(spec);
  const dtd::Explainer<T> e(net, dtd::ExplainRules::from_preset("bounded", scalar(0), scalar(1)));
  constexpr int kThreads = 8, kRequests = 6;
  std::vector<std::vector<dtd::Tensor<T>>> inputs(kThreads);
  std::vector<std::vector<dtd::Explanation<T>>> expected(kThreads), got(kThreads);
  for (int t = 0; t < kThreads; ++t)
    for (int q = 0; q < kRequests; ++q) {
      inputs[t].push_back(uniform<T>({1 + (t + q) % 4, 2, 8, 8}, rng, 0, 1));
      const bool k = (t + q) % 3 == 0;
      expected[t].push_back(
          e.explain(inputs[t][q], k ? dtd::Target::one_class(q % 5) : dtd::Target::argmax(), /*report=*/q % 2 == 0));
    }
  for (const int omp : {1, 2}) {
    omp_set_num_threads(omp);
    std::vector<std::thread> pool;
    for (int t = 0; t < kThreads; ++t)
      pool.emplace_back([&, t] {
        got[t].clear();
        for (int q = 0; q < kRequests; ++q) {
          const bool k = (t + q) % 3 == 0;
          got[t].push_back(
              e.explain(inputs[t][q], k ? dtd::Target::one_class(q % 5) : dtd::Target::argmax(), q % 2 == 0));
        }
      });
    for (auto& th : pool) th.join();
    bool same = true;
    for (int t = 0; t < kThreads; ++t)
      for (int q = 0; q < kRequests; ++q) {
        const auto& a = expected[t][q];
        const auto& b = got[t][q];
        same &= a.relevance.shape == b.relevance.shape && a.relevance.data == b.relevance.data &&
                a.logits.data == b.logits.data && a.targets == b.targets && a.layers.size() == b.layers.size();
        for (size_t i = 0; same && i < a.layers.size(); ++i)
          same &= a.layers[i].relevance_out == b.layers[i].relevance_out &&
                  a.layers[i].relevance_in == b.layers[i].relevance_in;
      }
    check(same, std::string("8 threads sharing one network and explainer, bit-identical to sequential (") +
                    (sizeof(T) == 4 ? "float32" : "float64") + ", " + std::to_string(omp) + " OpenMP threads)");
  }
}

}  // namespace

int main() {
  test_presets_report_conservation();
  test_composite_overrides_and_errors();
  test_bounds();
  test_targets();
  test_concurrent_explain<float>();
  test_concurrent_explain<double>();
  if (failures == 0) std::printf("all C++ explain tests passed\n");
  return failures == 0 ? 0 : 1;
}
