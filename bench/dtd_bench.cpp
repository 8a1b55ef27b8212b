// dtd_bench: forward and explanation (DTD bounded preset) latency of standard networks, a C++ client of the public
// dtd::core API as an embedding service would be. See bench/README.md for the options and what each figure means.
#include <omp.h>
#include <sys/resource.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <dtd/dtd.hpp>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "models.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using Net = dtd::Network<float>;
using TensorF = dtd::Tensor<float>;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---- options ---------------------------------------------------------------------------------------------------

struct Options {
  std::vector<std::string> models;  // builtin names
  std::vector<std::string> files;   // --model paths
  std::vector<int64_t> batches;     // empty: 1 and 16 (8 for inputs of 224x224 size)
  std::vector<int> threads;         // empty: 1 and all
  bool quick = false;
  bool per_layer = false;
  std::string json;
  int warmup = 1;
  int min_runs = 5;
  int max_runs = 1000;
  double min_time = 1.0;   // seconds per measurement, once min_runs are done
  double max_time = 10.0;  // stop after this many seconds once 3 runs are done
  double low = 0.0, high = 1.0;
  uint64_t seed = 1;
  int gemm_size = 1024;
  dtd::Algorithm algorithm = dtd::Algorithm::exact;
  std::string algorithm_name = "exact";
};

const char* kUsage =
    "usage: dtd_bench [options]\n"
    "  --models a,b,...   builtin models to run: mlp, lenet, vgg11, resnet18, vgg16, or all\n"
    "                     (default: all builtin models unless --model is given)\n"
    "  --model PATH       also run an ONNX model (dtd::load_onnx; external data from its folder; repeatable)\n"
    "  --batch 1,16       batch sizes (default: 1 and 16; 1 and 8 for inputs of >= 100k values)\n"
    "  --threads 1,2      OpenMP thread counts (default: 1 and all = omp_get_max_threads())\n"
    "  --per-layer        also time every layer alone (forward, relevance, and the linear primitives)\n"
    "  --json FILE        write every figure to FILE as JSON\n"
    "  --quick            tiny repeat counts and a small GEMM peak (CI smoke test); implies --min-time 0\n"
    "  --min-runs N       timed runs per measurement at least (default 5), after --warmup N (default 1)\n"
    "  --min-time S       keep repeating until S seconds are spent (default 1)\n"
    "  --max-time S       stop after S seconds once 3 runs are done (default 10)\n"
    "  --low L --high H   the input range: inputs are uniform in [L, H] and the z^beta bounds (default 0, 1)\n"
    "  --seed N           seed of the weights and inputs (default 1)\n"
    "  --gemm-size N      side of the square SGEMM that measures the peak (default 1024)\n"
    "  --algorithm A      exact (default) or winograd: the explanations' algorithm (dtd::Algorithm; the per-layer\n"
    "                     table stays exact)\n";

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "dtd_bench: %s\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

long long to_int(const std::string& s, const std::string& opt) {
  try {
    size_t pos = 0;
    const long long v = std::stoll(s, &pos);
    if (pos == s.size()) return v;
  } catch (const std::exception&) {
  }
  usage_error(opt + ": not an integer: '" + s + "'");
}

double to_double(const std::string& s, const std::string& opt) {
  try {
    size_t pos = 0;
    const double v = std::stod(s, &pos);
    if (pos == s.size()) return v;
  } catch (const std::exception&) {
  }
  usage_error(opt + ": not a number: '" + s + "'");
}

Options parse(int argc, char** argv) {
  Options o;
  bool models_given = false;
  bool min_time_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::printf("%s", kUsage);
      std::exit(0);
    } else if (a == "--models") {
      models_given = true;
      for (const auto& m : split(value())) {
        if (m == "all") {
          o.models.insert(o.models.end(), bench::model_names().begin(), bench::model_names().end());
        } else if (std::find(bench::model_names().begin(), bench::model_names().end(), m) ==
                   bench::model_names().end()) {
          usage_error("unknown model '" + m + "'");
        } else {
          o.models.push_back(m);
        }
      }
    } else if (a == "--model") {
      o.files.push_back(value());
    } else if (a == "--batch") {
      for (const auto& b : split(value())) o.batches.push_back(std::max(1LL, to_int(b, a)));
    } else if (a == "--threads") {
      for (const auto& t : split(value())) o.threads.push_back(static_cast<int>(std::max(1LL, to_int(t, a))));
    } else if (a == "--per-layer") {
      o.per_layer = true;
    } else if (a == "--json") {
      o.json = value();
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--warmup") {
      o.warmup = static_cast<int>(std::max(0LL, to_int(value(), a)));
    } else if (a == "--min-runs") {
      o.min_runs = static_cast<int>(std::max(1LL, to_int(value(), a)));
    } else if (a == "--min-time") {
      o.min_time = to_double(value(), a);
      min_time_given = true;
    } else if (a == "--max-time") {
      o.max_time = to_double(value(), a);
    } else if (a == "--low") {
      o.low = to_double(value(), a);
    } else if (a == "--high") {
      o.high = to_double(value(), a);
    } else if (a == "--seed") {
      o.seed = static_cast<uint64_t>(to_int(value(), a));
    } else if (a == "--algorithm") {
      o.algorithm_name = value();
      try {
        o.algorithm = dtd::parse_algorithm(o.algorithm_name);
      } catch (const std::invalid_argument& e) {
        usage_error(std::string("--algorithm: ") + e.what());
      }
    } else if (a == "--gemm-size") {
      o.gemm_size = static_cast<int>(std::max(16LL, to_int(value(), a)));
    } else {
      usage_error("unknown option '" + a + "'");
    }
  }
  if (!models_given && o.files.empty()) o.models = bench::model_names();
  if (o.quick) {
    o.warmup = 1, o.min_runs = 2, o.max_runs = 2, o.max_time = 1.0;
    if (!min_time_given) o.min_time = 0.0;
    o.gemm_size = std::min(o.gemm_size, 512);
  }
  if (!(o.low < o.high)) usage_error("--low must be below --high");
  if (o.threads.empty()) o.threads = {1, omp_get_max_threads()};
  std::sort(o.threads.begin(), o.threads.end());
  o.threads.erase(std::unique(o.threads.begin(), o.threads.end()), o.threads.end());
  return o;
}

// ---- measurement -----------------------------------------------------------------------------------------------

struct Stats {
  double min = 0, median = 0, max = 0;  // milliseconds
  int runs = 0;
};

Stats summarize(std::vector<double> ms) {
  Stats s;
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  s.runs = static_cast<int>(ms.size());
  s.min = ms.front(), s.max = ms.back();
  const size_t h = ms.size() / 2;
  s.median = ms.size() % 2 ? ms[h] : 0.5 * (ms[h - 1] + ms[h]);
  return s;
}

// Calls f() `warmup` times, then times it until min_runs and min_time are both reached (or max_runs, or
// max_time after 3 runs). Returns the per-run times in milliseconds.
template <class F>
std::vector<double> repeat(const Options& o, F&& f) {
  for (int i = 0; i < o.warmup; ++i) f();
  std::vector<double> ms;
  double total = 0;
  for (;;) {
    const auto t0 = Clock::now();
    f();
    const double s = seconds_since(t0);
    ms.push_back(1e3 * s);
    total += s;
    const int n = static_cast<int>(ms.size());
    if (n >= o.max_runs || (n >= o.min_runs && total >= o.min_time) || (n >= 3 && total >= o.max_time)) break;
  }
  return ms;
}

// A dense layer n -> n without bias: its forward at batch n is one n x n x n SGEMM through dtd's own kernel.
dtd::Network<float> square_dense(int n) {
  dtd::ModelSpec spec;
  spec.input_name = "x";
  spec.input_shape = {n};
  dtd::LayerSpec fc;
  fc.name = "fc";
  fc.kind = dtd::LayerKind::dense;
  fc.inputs = {"x"};
  fc.output = "y";
  dtd::Array w{{n, n}, std::vector<double>(static_cast<size_t>(n) * static_cast<size_t>(n))};
  for (size_t i = 0; i < w.data.size(); ++i) w.data[i] = static_cast<double>((i * 7) % 13) / 13.0 - 0.5;
  fc.weights["weight"] = std::move(w);
  spec.layers = {fc};
  spec.output = "y";
  return dtd::Network<float>(spec);
}

// The machine's SGEMM peak with `threads` threads: every thread multiplies its own n x n float matrices, all at
// once, with Eigen's GEMM and with dtd's own (a dense layer at batch n, single-threaded inside as every call in a
// parallel region is); the best of a few rounds of the faster of the two.
double sgemm_peak_gflops(int threads, int n, int rounds) {
  double best = std::numeric_limits<double>::infinity();
  double t_start = 0;
#pragma omp parallel num_threads(threads)
  {
    Eigen::MatrixXf a(n, n), b(n, n), c(n, n);
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < n; ++i) {
        a(i, j) = static_cast<float>((i * 7 + j * 3) % 13) / 13.0f - 0.5f;
        b(i, j) = static_cast<float>((i * 5 + j * 11) % 17) / 17.0f - 0.5f;
      }
    omp_set_num_threads(1);  // dtd's kernels on this thread alone (a team of one does not count as "in parallel")
    const dtd::Network<float> net = square_dense(n);
    const dtd::Tensor<float> x({n, n}, 0.25f);
    dtd::Tensor<float> y;
    for (int engine = 0; engine < 2; ++engine) {
      auto product = [&] {
        if (engine == 0)
          c.noalias() = a * b;
        else
          y = net.forward(x);
      };
      product();  // warm-up: page faults, caches, frequency
      for (int r = 0; r < rounds; ++r) {
#pragma omp barrier
#pragma omp master
        t_start = std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
#pragma omp barrier
        product();
#pragma omp barrier
#pragma omp master
        best = std::min(best, std::chrono::duration<double>(Clock::now().time_since_epoch()).count() - t_start);
      }
    }
    volatile float sink = c(0, 0) + y.data[0];
    (void)sink;
  }
  return 2.0 * n * n * static_cast<double>(n) * threads / best / 1e9;
}

// ---- memory ----------------------------------------------------------------------------------------------------

// Peak resident set size in MB since the last reset_peak_rss() (VmHWM), or since the start (getrusage) where the
// kernel does not allow resetting it.
bool g_peak_resettable = false;

double status_mb(const char* key) {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind(key, 0) == 0) return std::atof(line.c_str() + std::string(key).size()) / 1024.0;  // kB
  return -1;
}

void reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  g_peak_resettable = static_cast<bool>(f);
}

double peak_rss_mb() {
  if (g_peak_resettable) {
    const double hwm = status_mb("VmHWM:");
    if (hwm >= 0) return hwm;
  }
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

// ---- explanation -----------------------------------------------------------------------------------------------

// The DTD bounded preset (z^beta on the first parametric layer with the input range as bounds, z+ elsewhere,
// winner-take-all max pooling, the z+ form of Add), explaining each sample's top logit: dtd::Explainer, as an
// embedding service calls it.
dtd::ExplainRules bounded_preset(double low, double high) {
  return dtd::ExplainRules::from_preset("bounded", dtd::Array{{}, {low}}, dtd::Array{{}, {high}});
}

// Output relevance: each sample's top logit, one-hot (RULES.md "Where relevance starts").
TensorF start_relevance(const TensorF& logits) {
  return dtd::output_relevance(logits)[0];
}

TensorF explain(const dtd::Explainer<float>& explainer, const TensorF& x, dtd::Algorithm algorithm) {
  return explainer.explain(x, dtd::Target::argmax(), false, algorithm).relevance;
}

// ---- per-layer timing ------------------------------------------------------------------------------------------

struct LayerTiming {
  std::string name, kind, shape;
  int64_t macs = 0;                          // per sample
  Stats forward, relevance, apply, apply_t;  // apply / apply_t: one product with w+ (parametric layers only)
};

dtd::Shape batched(int64_t n, const dtd::Shape& s) {
  dtd::Shape out{n};
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

// Runs the network layer by layer the way Network::trace and Network::relevance do, timing each layer's forward
// and relevance alone; for dense and conv layers also the two primitives every rule is built from (apply: im2col
// + GEMM; apply_transposed: GEMM + col2im), once each with w+.
std::vector<LayerTiming> profile_layers(const Net& net, const TensorF& x, const dtd::Plan<float>& plan,
                                        const Options& o) {
  const size_t nl = net.size();
  const int64_t n = x.batch();
  std::vector<std::vector<double>> fwd(nl), rel(nl), app(nl), app_t(nl);
  auto pass = [&](bool record) {
    std::vector<TensorF> values(nl + 1);
    values[0] = x;
    for (size_t i = 0; i < nl; ++i) {
      const dtd::Layer<float>& l = net.layer(i);
      std::vector<const TensorF*> in;
      for (int id : l.inputs()) in.push_back(&values[static_cast<size_t>(id)]);
      TensorF out(batched(n, l.output_shape()));
      const auto t0 = Clock::now();
      l.forward(in, out);
      if (record) fwd[i].push_back(1e3 * seconds_since(t0));
      values[i + 1] = std::move(out);
    }
    std::vector<TensorF> r(nl + 1);
    std::vector<bool> has(nl + 1, false);
    const auto lv = static_cast<size_t>(net.logits_value());
    r[lv] = start_relevance(values[lv]);
    has[lv] = true;
    for (size_t i = nl; i-- > 0;) {
      if (!has[i + 1]) continue;
      const dtd::Layer<float>& l = net.layer(i);
      std::vector<const TensorF*> in;
      std::vector<TensorF> r_in;
      for (int id : l.inputs()) {
        in.push_back(&values[static_cast<size_t>(id)]);
        r_in.emplace_back(values[static_cast<size_t>(id)].shape);
      }
      const auto t0 = Clock::now();
      l.relevance(in, values[i + 1], r[i + 1], plan[i], r_in);
      if (record) rel[i].push_back(1e3 * seconds_since(t0));
      if (const auto* lin = dynamic_cast<const dtd::LinearLayer<float>*>(&l)) {
        TensorF y(values[i + 1].shape), g(values[static_cast<size_t>(l.inputs()[0])].shape);
        const float* wp = lin->weights(dtd::WeightSet::positive);
        const auto t1 = Clock::now();
        lin->apply(in[0]->ptr(), n, wp, y.ptr());
        const auto t2 = Clock::now();
        lin->apply_transposed(r[i + 1].ptr(), n, wp, g.ptr());
        if (record) {
          app[i].push_back(1e3 * std::chrono::duration<double>(t2 - t1).count());
          app_t[i].push_back(1e3 * seconds_since(t2));
        }
      }
      r[i + 1] = TensorF();
      for (size_t k = 0; k < r_in.size(); ++k) {
        const auto id = static_cast<size_t>(l.inputs()[k]);
        if (!has[id]) {
          r[id] = std::move(r_in[k]);
          has[id] = true;
        } else {
          for (size_t j = 0; j < r[id].data.size(); ++j) r[id].data[j] += r_in[k].data[j];
        }
      }
    }
  };
  for (int i = 0; i < o.warmup; ++i) pass(false);
  Options po = o;
  po.warmup = 0;
  repeat(po, [&] { pass(true); });
  std::vector<LayerTiming> out(nl);
  for (size_t i = 0; i < nl; ++i) {
    const dtd::Layer<float>& l = net.layer(i);
    out[i].name = l.name();
    out[i].kind = dtd::to_string(l.kind());
    out[i].shape = dtd::to_string(l.output_shape());
    out[i].macs = l.macs();
    out[i].forward = summarize(fwd[i]);
    out[i].relevance = summarize(rel[i]);
    out[i].apply = summarize(app[i]);
    out[i].apply_t = summarize(app_t[i]);
  }
  return out;
}

// ---- the run ---------------------------------------------------------------------------------------------------

struct Config {
  int64_t batch = 1;
  int threads = 1;
  Stats forward, explain;
  double forward_gflops = 0, peak_fraction = 0;
  double relevance_sum = 0, logit_sum = 0;  // sanity: the explanation of the last run, summed over the batch
  std::vector<LayerTiming> layers;
};

struct ModelResult {
  std::string name, source, input_shape;
  int64_t params = 0, macs = 0;  // per sample: multiply-adds of conv and dense layers
  size_t layer_count = 0;
  double build_seconds = 0, rss_before_mb = 0, peak_rss_mb = 0;
  std::vector<Config> configs;
};

std::string cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) {
      const auto p = line.find(':');
      return p == std::string::npos ? line : line.substr(p + 2);
    }
  return "unknown CPU";
}

std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_num(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string json_stats(const Stats& s) {
  return "{\"min\": " + json_num(s.min) + ", \"median\": " + json_num(s.median) + ", \"max\": " + json_num(s.max) +
         ", \"runs\": " + std::to_string(s.runs) + "}";
}

void write_json(const std::string& path, const Options& o, const std::vector<std::pair<int, double>>& peaks,
                const std::vector<ModelResult>& results) {
  std::ofstream f(path);
  f << "{\n  \"machine\": {\"cpu\": " << json_str(cpu_name()) << ", \"omp_max_threads\": " << omp_get_max_threads()
    << ", \"eigen_simd\": " << json_str(Eigen::SimdInstructionSetsInUse()) << "},\n";
  f << "  \"dtype\": \"float32\",\n  \"rules\": \"DTD bounded preset: zbox(low, high) first parametric layer, zplus "
       "elsewhere, biases excluded\",\n";
  f << "  \"options\": {\"low\": " << json_num(o.low) << ", \"high\": " << json_num(o.high) << ", \"seed\": " << o.seed
    << ", \"warmup\": " << o.warmup << ", \"min_runs\": " << o.min_runs << ", \"min_time_s\": " << json_num(o.min_time)
    << ", \"max_time_s\": " << json_num(o.max_time) << ", \"quick\": " << (o.quick ? "true" : "false")
    << ", \"algorithm\": " << json_str(o.algorithm_name) << "},\n";
  f << "  \"sgemm_peak_gflops\": {\"size\": " << o.gemm_size;
  for (const auto& [t, g] : peaks) f << ", \"" << t << "\": " << json_num(g);
  f << "},\n  \"peak_rss_resettable\": " << (g_peak_resettable ? "true" : "false") << ",\n  \"models\": [";
  for (size_t m = 0; m < results.size(); ++m) {
    const ModelResult& r = results[m];
    f << (m ? "," : "") << "\n    {\"name\": " << json_str(r.name) << ", \"source\": " << json_str(r.source)
      << ", \"input_shape\": " << json_str(r.input_shape) << ", \"layers\": " << r.layer_count
      << ", \"params\": " << r.params << ", \"macs_per_sample\": " << r.macs
      << ", \"build_seconds\": " << json_num(r.build_seconds) << ", \"rss_before_mb\": " << json_num(r.rss_before_mb)
      << ", \"peak_rss_mb\": " << json_num(r.peak_rss_mb) << ", \"runs\": [";
    for (size_t c = 0; c < r.configs.size(); ++c) {
      const Config& k = r.configs[c];
      f << (c ? "," : "") << "\n      {\"batch\": " << k.batch << ", \"threads\": " << k.threads
        << ", \"forward_ms\": " << json_stats(k.forward) << ", \"explain_ms\": " << json_stats(k.explain)
        << ", \"forward_gflops\": " << json_num(k.forward_gflops)
        << ", \"forward_peak_fraction\": " << json_num(k.peak_fraction)
        << ", \"explain_over_forward\": " << json_num(k.explain.median / k.forward.median)
        << ", \"relevance_sum\": " << json_num(k.relevance_sum) << ", \"logit_sum\": " << json_num(k.logit_sum);
      if (!k.layers.empty()) {
        f << ", \"per_layer\": [";
        for (size_t i = 0; i < k.layers.size(); ++i) {
          const LayerTiming& l = k.layers[i];
          f << (i ? "," : "") << "\n        {\"name\": " << json_str(l.name) << ", \"kind\": " << json_str(l.kind)
            << ", \"output_shape\": " << json_str(l.shape) << ", \"macs_per_sample\": " << l.macs
            << ", \"forward_ms\": " << json_stats(l.forward) << ", \"relevance_ms\": " << json_stats(l.relevance);
          if (l.apply.runs) f << ", \"apply_wplus_ms\": " << json_stats(l.apply);
          if (l.apply_t.runs) f << ", \"apply_transposed_wplus_ms\": " << json_stats(l.apply_t);
          f << "}";
        }
        f << "]";
      }
      f << "}";
    }
    f << "]}";
  }
  f << "\n  ]\n}\n";
  if (!f) throw std::runtime_error("cannot write " + path);
}

void print_layers(const Config& c) {
  double total = 0;
  for (const auto& l : c.layers) total += l.forward.median + l.relevance.median;
  std::printf("    per layer, batch %lld, %d thread(s), medians in ms (apply / apply_T: one product with w+ alone)\n",
              static_cast<long long>(c.batch), c.threads);
  std::printf("    %-3s %-12s %-13s %-18s %8s %9s %8s %9s %8s %8s %6s\n", "#", "name", "kind", "output", "MMAC", "fwd",
              "GFLOP/s", "relevance", "apply", "apply_T", "share");
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const LayerTiming& l = c.layers[i];
    const double mmac = static_cast<double>(l.macs) * static_cast<double>(c.batch) / 1e6;
    const double gf = l.macs ? 2.0 * mmac / l.forward.median : 0;  // 2 * MMAC / ms = GFLOP/s
    char app[16] = "", app_t[16] = "", gfs[16] = "";
    if (l.apply.runs) std::snprintf(app, sizeof app, "%.3f", l.apply.median);
    if (l.apply_t.runs) std::snprintf(app_t, sizeof app_t, "%.3f", l.apply_t.median);
    if (l.macs) std::snprintf(gfs, sizeof gfs, "%.1f", gf);
    std::printf("    %-3zu %-12.12s %-13s %-18.18s %8.1f %9.3f %8s %9.3f %8s %8s %5.1f%%\n", i, l.name.c_str(),
                l.kind.c_str(), l.shape.c_str(), mmac, l.forward.median, gfs, l.relevance.median, app, app_t,
                total > 0 ? 100.0 * (l.forward.median + l.relevance.median) / total : 0.0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::printf("dtd_bench: %s, %d OpenMP threads available, float32, Eigen SIMD: %s\n", cpu_name().c_str(),
              omp_get_max_threads(), Eigen::SimdInstructionSetsInUse());
  const dtd::BuildInfo build = dtd::build_info();
  std::printf("dtd core: %s build (%s), own SGEMM kernel: %s, Eigen %s, %s\n", build.variant.c_str(),
              build.arch_options.empty() ? "compiler default target" : build.arch_options.c_str(),
              build.own_sgemm ? build.sgemm_kernel.c_str() : "no (Eigen's GEMM)", build.eigen_version.c_str(),
              build.compiler.c_str());
  std::printf(
      "explanation = trace + one-hot top logit + relevance, DTD bounded preset (zbox [%g, %g] first, z+ "
      "elsewhere)\n",
      o.low, o.high);

  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) == 3 && load[0] > 0.5)
    std::printf(
        "warning: load average %.2f before the run: other processes compete for the cores, figures (above "
        "all multi-threaded ones) will be noisy\n",
        load[0]);

  std::vector<std::pair<int, double>> peaks;
  for (int t : o.threads) peaks.emplace_back(t, sgemm_peak_gflops(t, o.gemm_size, o.quick ? 2 : 5));
  dtd::release_cached_memory();  // the peak's buffers are not part of any model's resident set
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  std::printf("SGEMM peak (best of Eigen and dtd, %dx%d per thread, all threads at once):", o.gemm_size, o.gemm_size);
  for (const auto& [t, g] : peaks) std::printf("  %d thread(s) %.1f GFLOP/s", t, g);
  std::printf("\n\n");

  std::vector<std::pair<std::string, std::string>> todo;  // name, file path ("" for builtin)
  for (const auto& m : o.models) todo.emplace_back(m, "");
  for (const auto& p : o.files) {
    std::string stem = p.substr(p.find_last_of('/') + 1);
    todo.emplace_back(stem.substr(0, stem.rfind('.')), p);
  }

  std::vector<ModelResult> results;
  bool sane = true;
  std::printf("%-10s %5s %3s | %-25s %7s %6s | %-26s %8s | %8s\n", "model", "batch", "thr", "forward ms min/med/max",
              "GFLOP/s", "%peak", "explain ms min/med/max", "expl/fwd", "peakRSS");
  for (const auto& [name, path] : todo) {
    ModelResult res;
    res.name = name;
    res.source = path.empty() ? "builtin (Kaiming-normal, seed " + std::to_string(o.seed) + ")" : path;
    reset_peak_rss();
    res.rss_before_mb = status_mb("VmRSS:");
    const auto t0 = Clock::now();
    std::unique_ptr<Net> net;
    try {
      dtd::ModelSpec spec = path.empty() ? bench::build_model(name, o.seed) : dtd::load_onnx(path);
      net = std::make_unique<Net>(spec);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "dtd_bench: %s: %s\n", name.c_str(), e.what());
      return 1;
    }
    res.build_seconds = seconds_since(t0);
    res.layer_count = net->size();
    res.input_shape = dtd::to_string(net->input_shape());
    for (size_t i = 0; i < net->size(); ++i) {
      res.params += net->layer(i).parameter_count();
      if (net->layer(i).parametric()) res.macs += net->layer(i).macs();
    }
    // Prepared once per model, as an embedding service would: the z^beta bound terms do not depend on the input.
    const dtd::Explainer<float> explainer(*net, bounded_preset(o.low, o.high));
    const dtd::Plan<float>& plan = explainer.plan();
    std::vector<int64_t> batches = o.batches;
    if (batches.empty()) batches = {1, dtd::numel(net->input_shape()) >= 100000 ? 8 : 16};

    for (int64_t batch : batches) {
      TensorF x(batched(batch, net->input_shape()));
      std::mt19937 rng(static_cast<unsigned>(o.seed * 7919 + static_cast<uint64_t>(batch)));
      std::uniform_real_distribution<float> u(static_cast<float>(o.low), static_cast<float>(o.high));
      for (float& v : x.data) v = u(rng);
      for (size_t ti = 0; ti < o.threads.size(); ++ti) {
        Config c;
        c.batch = batch;
        c.threads = o.threads[ti];
        omp_set_num_threads(c.threads);
        c.forward = summarize(repeat(o, [&] { net->forward(x); }));
        TensorF rel;
        c.explain = summarize(repeat(o, [&] { rel = explain(explainer, x, o.algorithm); }));
        for (float v : rel.data) {
          sane &= std::isfinite(v);
          c.relevance_sum += v;
        }
        const TensorF logits = start_relevance(net->trace(x).values[static_cast<size_t>(net->logits_value())]);
        for (float v : logits.data) c.logit_sum += v;
        sane &= rel.shape == x.shape;
        const double flops = 2.0 * static_cast<double>(res.macs) * static_cast<double>(batch);
        c.forward_gflops = flops / (c.forward.median * 1e-3) / 1e9;
        c.peak_fraction = c.forward_gflops / peaks[ti].second;
        if (o.per_layer) c.layers = profile_layers(*net, x, plan, o);
        std::printf("%-10.10s %5lld %3d | %7.3f %8.3f %8.3f %7.1f %5.1f%% | %8.3f %8.3f %8.3f %8.2fx |", name.c_str(),
                    static_cast<long long>(batch), c.threads, c.forward.min, c.forward.median, c.forward.max,
                    c.forward_gflops, 100 * c.peak_fraction, c.explain.min, c.explain.median, c.explain.max,
                    c.explain.median / c.forward.median);
        std::printf(" %7.0fM\n", peak_rss_mb());
        if (o.per_layer) print_layers(c);
        std::fflush(stdout);
        res.configs.push_back(std::move(c));
      }
    }
    res.peak_rss_mb = peak_rss_mb();
    std::printf(
        "%-10.10s %lld layers, %.2f M params, %.3f GMAC/sample, input %s, built in %.2f s, peak RSS %.0f MB "
        "(%.0f MB before)\n",
        name.c_str(), static_cast<long long>(res.layer_count), static_cast<double>(res.params) / 1e6,
        static_cast<double>(res.macs) / 1e9, res.input_shape.c_str(), res.build_seconds, res.peak_rss_mb,
        res.rss_before_mb);
    results.push_back(std::move(res));
  }
  if (!g_peak_resettable) std::printf("note: peak RSS could not be reset per model: figures are process-wide\n");
  if (!o.json.empty()) {
    write_json(o.json, o, peaks, results);
    std::printf("wrote %s\n", o.json.c_str());
  }
  if (!sane) {
    std::fprintf(stderr, "dtd_bench: an explanation had a non-finite value or the wrong shape\n");
    return 1;
  }
  return 0;
}
