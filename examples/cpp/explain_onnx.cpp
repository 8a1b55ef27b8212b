// explain_onnx: a complete program embedding dtd (it links dtd::core only). It loads an ONNX model, reads an input
// batch from a .npy file, explains it with a preset, writes the relevance as .npy and prints the per-layer
// conservation report. The relevance is bit for bit what Python's dtd.explain returns for the same model, input,
// rules and target, when both use the same build of the core (the same compiler and instruction-set level).
//
//   explain_onnx model.onnx input.npy relevance.npy [--preset NAME] [--class K] [--low L --high H] [--eps E]
//
// Exit status: 0 done, 1 the model, the input or the explanation failed (the message says why), 2 bad arguments.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <dtd/dtd.hpp>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "npy.hpp"

namespace {

const char* const kUsage =
    "usage: explain_onnx MODEL.onnx INPUT.npy RELEVANCE.npy [--preset NAME] [--class K] [--low L --high H] "
    "[--eps E]\n"
    "  INPUT.npy      float32 or float64, one sample (the model's input shape) or a batch [N, ...]\n"
    "  --preset NAME  deep_taylor (default: bounded with --low/--high, else real), bounded, real, positive, "
    "epsilon\n"
    "  --class K      the class explained for every sample (default: each sample's argmax)\n"
    "  --low, --high  the input bounds of the z^beta rule (the bounded preset), scalars\n"
    "  --eps E        the stabilizer of the preset's rules\n";

struct Options {
  std::string model, input, output;
  std::string preset = "deep_taylor";
  std::optional<int64_t> target_class;
  std::optional<double> low, high, eps;
};

struct UsageError {
  std::string message;
};

double to_double(const std::string& text, const std::string& flag) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
    throw UsageError{flag + " takes a finite number, got '" + text + "'"};
  return v;
}

int64_t to_int(const std::string& text, const std::string& flag) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE) throw UsageError{flag + " takes an integer, got '" + text + "'"};
  return static_cast<int64_t>(v);
}

Options parse(int argc, char** argv) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError{a + " needs a value"};
      return argv[++i];
    };
    if (a == "--preset") {
      o.preset = value();
    } else if (a == "--class") {
      o.target_class = to_int(value(), a);
    } else if (a == "--low") {
      o.low = to_double(value(), a);
    } else if (a == "--high") {
      o.high = to_double(value(), a);
    } else if (a == "--eps") {
      o.eps = to_double(value(), a);
    } else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a.size() > 1 && a[0] == '-' && a[1] == '-') {
      throw UsageError{"unknown option " + a};
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 3) throw UsageError{"expected MODEL.onnx INPUT.npy RELEVANCE.npy"};
  o.model = positional[0];
  o.input = positional[1];
  o.output = positional[2];
  if (o.low.has_value() != o.high.has_value()) throw UsageError{"--low and --high go together"};
  const auto& names = dtd::preset_names();
  if (std::find(names.begin(), names.end(), o.preset) == names.end()) {
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    throw UsageError{"unknown preset '" + o.preset + "' (" + known + ")"};
  }
  return o;
}

std::optional<dtd::Array> scalar(const std::optional<double>& v) {
  if (!v) return std::nullopt;
  return dtd::Array{{}, {*v}};
}

// The explanation in T (the input's dtype, as dtd.explain computes in x's dtype).
template <class T>
int run(const Options& o, const dtd::ModelSpec& spec, const std::vector<int64_t>& x_shape, const std::vector<T>& data,
        bool single) {
  const dtd::Network<T> net(spec);
  const dtd::ExplainRules rules = dtd::ExplainRules::from_preset(o.preset, scalar(o.low), scalar(o.high), o.eps);
  // Bounds mapped through leading layers (input normalisation) are mapped in float64, as dtd.explain does.
  std::unique_ptr<dtd::Network<double>> net64;
  if constexpr (std::is_same_v<T, float>) {
    if (dtd::Explainer<float>::maps_bounds(net, rules)) net64 = std::make_unique<dtd::Network<double>>(spec);
  }
  const dtd::Explainer<T> explainer(net, rules, net64.get());

  dtd::Tensor<T> x = dtd::Tensor<T>::uninitialized(x_shape);
  std::copy(data.begin(), data.end(), x.data.begin());
  const dtd::Target target = o.target_class ? dtd::Target::one_class(*o.target_class) : dtd::Target::argmax();
  const dtd::Explanation<T> ex = explainer.explain(x, target, /*report=*/true);

  std::vector<int64_t> out_shape = ex.relevance.shape;
  if (single) out_shape.erase(out_shape.begin());
  npy::write(o.output, out_shape, ex.relevance.ptr(), ex.relevance.data.size());

  const dtd::BuildInfo info = dtd::build_info();
  std::printf("dtd core: %s (%s), %s, sgemm kernel %s\n", info.variant.c_str(),
              info.arch_options.empty() ? "compiler default" : info.arch_options.c_str(), info.build_type.c_str(),
              info.sgemm_kernel.c_str());
  // The conservation report (dtd.Explanation.report()): relevance totals per layer, summed over the batch.
  std::printf("%3s  %-24s %-14s %-16s %12s %12s %10s\n", "#", "layer", "kind", "rule", "R out", "R in", "absorbed");
  for (const dtd::LayerRelevance& lr : ex.layers) {
    double r_out = 0, r_in = 0;
    for (const double v : lr.relevance_out) r_out += v;
    for (const double v : lr.relevance_in) r_in += v;
    std::printf("%3d  %-24.24s %-14s %-16s %12.6g %12.6g %10.3g\n", lr.index, lr.name.c_str(), lr.kind.c_str(),
                lr.rule.c_str(), r_out, r_in, r_out - r_in);
  }
  // Per sample: the input relevance total against f_c(x), the logit it decomposes.
  const int64_t n = x.batch(), per_sample = ex.relevance.sample_size(), n_out = ex.logits.sample_size();
  for (int64_t s = 0; s < n; ++s) {
    double total = 0;
    for (int64_t i = 0; i < per_sample; ++i) total += static_cast<double>(ex.relevance.data[s * per_sample + i]);
    const int64_t c = ex.targets[static_cast<size_t>(s)];
    const double logit = static_cast<double>(ex.logits.data[s * n_out + c]);
    std::printf("sample %lld: class %lld, f(x) = %.9g, relevance total = %.9g (%.3g of f(x) absorbed)\n",
                static_cast<long long>(s), static_cast<long long>(c), logit, total,
                logit != 0 ? (logit - total) / logit : 0.0);
  }
  std::printf("wrote %s: %s %s\n", o.output.c_str(), std::is_same_v<T, float> ? "float32" : "float64",
              npy::shape_repr(out_shape).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "explain_onnx: %s\n%s", e.message.c_str(), kUsage);
    return 2;
  }
  try {
    const dtd::ModelSpec spec = dtd::load_onnx(o.model);
    const npy::Array in = npy::read(o.input);
    // One sample (the model's input shape) or a batch of them, as dtd.explain takes it.
    const std::vector<int64_t>& want = spec.input_shape;
    const bool single = in.shape == want;
    std::vector<int64_t> x_shape = in.shape;
    if (single) x_shape.insert(x_shape.begin(), 1);
    if (!single && !(x_shape.size() == want.size() + 1 && x_shape[0] > 0 &&
                     std::equal(want.begin(), want.end(), x_shape.begin() + 1))) {
      std::vector<int64_t> batch = want;
      batch.insert(batch.begin(), -1);
      std::string b = npy::shape_repr(batch);
      b.replace(1, 2, "N");
      std::fprintf(stderr, "explain_onnx: %s: input shape %s, expected %s (one sample) or %s (a batch)\n",
                   o.input.c_str(), npy::shape_repr(in.shape).c_str(), npy::shape_repr(want).c_str(), b.c_str());
      return 1;
    }
    return in.dtype == "float32" ? run<float>(o, spec, x_shape, in.f4, single)
                                 : run<double>(o, spec, x_shape, in.f8, single);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "explain_onnx: %s\n", e.what());
    return 1;
  }
}
