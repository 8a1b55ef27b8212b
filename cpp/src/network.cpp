// The executor: builds the layer DAG from a ModelSpec, runs it forward keeping every activation (the Trace),
// and runs the relevance pass in reverse topological order.
#include "dtd/network.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <type_traits>

#include "checked.hpp"
#include "dtd/error.hpp"
#include "dtd/threads.hpp"
#include "layers/activation.hpp"
#include "layers/add.hpp"
#include "layers/affine.hpp"
#include "layers/concat.hpp"
#include "layers/conv2d.hpp"
#include "layers/dense.hpp"
#include "layers/gate.hpp"
#include "layers/layernorm.hpp"
#include "layers/lrn.hpp"
#include "layers/pad.hpp"
#include "layers/pool2d.hpp"
#include "layers/relu.hpp"
#include "layers/reshape.hpp"
#include "layers/slice.hpp"
#include "layers/softmax.hpp"
#include "layers/transpose.hpp"
#include "parallel.hpp"

namespace dtd {

namespace {

// The attribute keys each kind reads (model_spec.hpp), so that a misspelt key ("stride") is a ModelError naming it,
// not a silently unstrided conv. Activation checks its floats itself, per op.
struct AttributeKeys {
  std::vector<const char*> ints, floats;
};

AttributeKeys attribute_keys(LayerKind kind) {
  switch (kind) {
    case LayerKind::conv: return {{"strides", "pads", "dilations", "group", "auto_pad"}, {}};
    case LayerKind::maxpool: return {{"kernel", "strides", "pads", "dilations", "ceil_mode", "auto_pad"}, {}};
    case LayerKind::avgpool:
      return {{"kernel", "strides", "pads", "dilations", "ceil_mode", "count_include_pad", "auto_pad"}, {}};
    case LayerKind::flatten:
    case LayerKind::concat:
    case LayerKind::softmax:
    case LayerKind::logsoftmax: return {{"axis"}, {}};
    case LayerKind::reshape: return {{"shape"}, {}};
    case LayerKind::layernorm: return {{"axis"}, {"epsilon"}};
    case LayerKind::activation: return {{"op"}, {}};
    case LayerKind::transpose: return {{"perm"}, {}};
    case LayerKind::slice: return {{"axes", "starts", "ends", "steps"}, {}};
    case LayerKind::gather: return {{"axis", "indices", "squeeze"}, {}};
    case LayerKind::pad: return {{"pads", "mode"}, {"value"}};
    case LayerKind::lrn: return {{"size"}, {"alpha", "beta", "bias"}};
    default: return {};  // dense, relu, add, affine, globalavgpool, globalmaxpool, gate: no attributes
  }
}

std::string key_list(const std::vector<const char*>& keys) {
  std::string s;
  for (const char* k : keys) s += (s.empty() ? "" : ", ") + std::string(k);
  return s.empty() ? "none" : s;
}

void check_attribute_keys(const LayerSpec& spec) {
  const AttributeKeys known = attribute_keys(spec.kind);
  auto check = [&](const std::vector<const char*>& keys, const std::string& key, const char* type) {
    const bool ok = std::any_of(keys.begin(), keys.end(), [&](const char* k) { return key == k; });
    DTD_CHECK(ok, ModelError, to_string(spec.kind), " layer '", spec.name, "': unknown attribute '", key, "' (",
              to_string(spec.kind), " takes ", type, " attributes: ", key_list(keys), ")");
  };
  for (const auto& kv : spec.ints) check(known.ints, kv.first, "int");
  if (spec.kind != LayerKind::activation)
    for (const auto& kv : spec.floats) check(known.floats, kv.first, "float");
}

template <class T>
std::unique_ptr<Layer<T>> make_layer(const LayerSpec& spec, std::vector<int> ids, std::vector<Shape> shapes) {
  const size_t expected = (spec.kind == LayerKind::add || spec.kind == LayerKind::concat) ? 0
                          : spec.kind == LayerKind::gate                                  ? 2
                                                                                          : 1;
  DTD_CHECK(expected == 0 || spec.inputs.size() == expected, ModelError, to_string(spec.kind), " layer '", spec.name,
            "': expected ", expected, expected == 1 ? " input" : " inputs", ", got ", spec.inputs.size());
  check_attribute_keys(spec);
  switch (spec.kind) {
    case LayerKind::dense: return std::make_unique<Dense<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::conv: return std::make_unique<Conv2d<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::relu: return std::make_unique<Relu<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::maxpool: return std::make_unique<MaxPool2d<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::avgpool: return std::make_unique<AvgPool2d<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::globalavgpool: return std::make_unique<GlobalAvgPool<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::flatten:
    case LayerKind::reshape: return std::make_unique<Reshape<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::add: return std::make_unique<Add<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::concat: return std::make_unique<Concat<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::softmax:
    case LayerKind::logsoftmax: return std::make_unique<Softmax<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::affine: return std::make_unique<Affine<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::layernorm: return std::make_unique<LayerNorm<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::globalmaxpool: return std::make_unique<GlobalMaxPool<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::activation: return std::make_unique<Activation<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::gate: return std::make_unique<Gate<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::transpose: return std::make_unique<Transpose<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::slice: return std::make_unique<Slice<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::gather: return std::make_unique<Gather<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::pad: return std::make_unique<Pad<T>>(spec, std::move(ids), std::move(shapes));
    case LayerKind::lrn: return std::make_unique<Lrn<T>>(spec, std::move(ids), std::move(shapes));
  }
  throw ModelError("layer '" + spec.name + "': unknown layer kind");
}

bool is_head(LayerKind kind) {
  return kind == LayerKind::softmax || kind == LayerKind::logsoftmax;
}

// Layers that may follow the head: they only reshape its output on the way to the model output.
bool is_shape_only(LayerKind kind) {
  return kind == LayerKind::reshape || kind == LayerKind::flatten;
}

template <class T>
Shape batched(int64_t n, const Shape& sample) {
  Shape s{n};
  s.insert(s.end(), sample.begin(), sample.end());
  return s;
}

}  // namespace

template <class T>
Network<T>::Network(const ModelSpec& spec) : input_shape_(spec.input_shape) {
  DTD_CHECK(!spec.layers.empty(), ModelError, "model has no layers");
  for (int64_t d : input_shape_)
    DTD_CHECK(d > 0, ModelError, "input '", spec.input_name,
              "' has a non-positive dimension: ", to_string(input_shape_));
  DTD_CHECK(spec.max_activation >= 1, ModelError, "max_activation must be >= 1, got ", spec.max_activation);
  DTD_CHECK(spec.max_total_activation >= 1, ModelError, "max_total_activation must be >= 1, got ",
            spec.max_total_activation);
  // The layers' constructors size per-sample tables against the same limit (checked.hpp).
  const detail::ActivationLimitScope limit(spec.max_activation);
  const std::string input_what = detail::concat("input '", spec.input_name, "' of shape ", to_string(input_shape_));
  int64_t total = detail::checked_numel(input_shape_, input_what);
  detail::check_activation(total, input_what);
  for (const LayerSpec& ls : spec.layers)
    for (const auto& [key, array] : ls.weights) {
      bool dims_ok = true;
      for (int64_t d : array.shape) dims_ok = dims_ok && d >= 0;
      DTD_CHECK(dims_ok, ModelError, to_string(ls.kind), " layer '", ls.name, "': weight '", key, "' has shape ",
                to_string(array.shape), " with a negative extent");
      DTD_CHECK(detail::checked_numel(array.shape, detail::where(ls, "weight shape")) ==
                    static_cast<int64_t>(array.data.size()),
                ModelError, to_string(ls.kind), " layer '", ls.name, "': weight '", key, "' holds ", array.data.size(),
                " values for shape ", to_string(array.shape));
    }
  std::map<std::string, int> ids{{spec.input_name, 0}};
  std::vector<Shape> value_shapes{input_shape_};
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const LayerSpec& ls = spec.layers[i];
    // A head is the last layer, or followed only by a chain of reshapes, each consuming the previous layer.
    bool head_ok = true;
    for (size_t k = i + 1; is_head(ls.kind) && k < spec.layers.size(); ++k)
      head_ok = head_ok && is_shape_only(spec.layers[k].kind) && spec.layers[k].inputs.size() == 1 &&
                spec.layers[k].inputs[0] == spec.layers[k - 1].output;
    DTD_CHECK(head_ok, ModelError, to_string(ls.kind), " layer '", ls.name,
              "' is supported only as the output head: the last layer, or followed only by reshapes to the output");
    std::vector<int> in;
    std::vector<Shape> shapes;
    for (const std::string& name : ls.inputs) {
      auto it = ids.find(name);
      DTD_CHECK(it != ids.end(), ModelError, to_string(ls.kind), " layer '", ls.name, "': input '", name,
                "' is not the model input nor the output of an earlier layer");
      in.push_back(it->second);
      shapes.push_back(value_shapes[static_cast<size_t>(it->second)]);
    }
    layers_.push_back(make_layer<T>(ls, std::move(in), std::move(shapes)));
    const Shape& out_shape = layers_.back()->output_shape();
    const std::string what =
        detail::concat(to_string(ls.kind), " layer '", ls.name, "': output shape ", to_string(out_shape));
    for (int64_t d : out_shape) DTD_CHECK(d >= 1, ModelError, what, " has an empty or negative axis");
    const int64_t elements = detail::checked_numel(out_shape, what);
    detail::check_activation(elements, what);
    total = detail::checked_add(total, elements, what, ": total elements per sample");
    DTD_CHECK(total <= spec.max_total_activation, ModelError, what, " brings the input and the layer outputs to ",
              total, " elements per sample, more than the limit of ", spec.max_total_activation,
              " (ModelSpec.max_total_activation; raise it with dtd.load(..., "
              "limits=dtd.Limits(max_total_activation=...)))");
    DTD_CHECK(ids.emplace(ls.output, static_cast<int>(i) + 1).second, ModelError, "layer '", ls.name,
              "': output name '", ls.output, "' is produced twice");
    value_shapes.push_back(layers_.back()->output_shape());
  }
  auto out = ids.find(spec.output);
  DTD_CHECK(out != ids.end(), ModelError, "model output '", spec.output, "' is not produced by any layer");
  output_value_ = out->second;
  logits_value_ = output_value_;
  // Relevance starts at the head's input; reshapes after the head are part of forward() only.
  int head = output_value_;
  while (head > 0 && is_shape_only(layers_[static_cast<size_t>(head - 1)]->kind()))
    head = layers_[static_cast<size_t>(head - 1)]->inputs()[0];
  if (head > 0 && is_head(layers_[static_cast<size_t>(head - 1)]->kind()))
    logits_value_ = layers_[static_cast<size_t>(head - 1)]->inputs()[0];
}

template <class T>
Network<T>::~Network() = default;
template <class T>
Network<T>::Network(Network&&) noexcept = default;
template <class T>
Network<T>& Network<T>::operator=(Network&&) noexcept = default;

template <class T>
const Shape& Network<T>::output_shape() const {
  return output_value_ == 0 ? input_shape_ : layers_[static_cast<size_t>(output_value_ - 1)]->output_shape();
}

template <class T>
const Shape& Network<T>::value_shape(int id) const {
  return id == 0 ? input_shape_ : layers_[static_cast<size_t>(id - 1)]->output_shape();
}

template <class T>
const Shape& Network<T>::logits_shape() const {
  return logits_value_ == 0 ? input_shape_ : layers_[static_cast<size_t>(logits_value_ - 1)]->output_shape();
}

template <class T>
int Network<T>::first_parametric() const {
  for (size_t i = 0; i < layers_.size(); ++i)
    if (layers_[i]->parametric()) return static_cast<int>(i);
  return -1;
}

template <class T>
Trace<T> Network<T>::trace(const Tensor<T>& x, const Plan<T>* plan, Algorithm algorithm) const {
  DTD_CHECK(!plan || plan->size() == layers_.size(), std::invalid_argument, "plan has ", plan ? plan->size() : 0,
            " rules for ", layers_.size(), " layers");
  DTD_CHECK(algorithm == Algorithm::exact || (std::is_same_v<T, float>), std::invalid_argument,
            "the winograd algorithm is float32 only (float64 keeps the exact products)");
  return trace_impl(x, false, plan, algorithm);
}

template <class T>
Trace<T> Network<T>::trace_impl(const Tensor<T>& x, bool release, const Plan<T>* plan, Algorithm algorithm) const {
  detail::adopt_thread_count();
  DTD_CHECK(x.shape.size() == input_shape_.size() + 1 &&
                std::equal(input_shape_.begin(), input_shape_.end(), x.shape.begin() + 1),
            std::invalid_argument, "input has shape ", to_string(x.shape), ", expected [N, ",
            to_string(input_shape_).substr(1));
  DTD_CHECK(x.batch() >= 1, std::invalid_argument, "input batch is empty");
  Trace<T> tr;
  tr.algorithm = algorithm;
  tr.values.reserve(layers_.size() + 1);
  tr.values.push_back(x);
  const int64_t n = x.batch();
  std::vector<size_t> last_use(layers_.size() + 1, 0);
  for (size_t li = 0; li < layers_.size(); ++li)
    for (int id : layers_[li]->inputs()) last_use[static_cast<size_t>(id)] = li + 1;
  last_use[static_cast<size_t>(output_value_)] = layers_.size() + 1;
  last_use[static_cast<size_t>(logits_value_)] = layers_.size() + 1;
  if (!release) {
    // Keep what the relevance pass reads (and the model input); release the rest as soon as it is consumed.
    last_use[0] = layers_.size() + 1;
    for (size_t li = 0; li < layers_.size(); ++li) {
      if (layers_[li]->relevance_reads_output()) last_use[li + 1] = layers_.size() + 1;
      if (layers_[li]->relevance_reads_inputs())
        for (int id : layers_[li]->inputs()) last_use[static_cast<size_t>(id)] = layers_.size() + 1;
    }
  }
  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer<T>& layer = *layers_[li];
    std::vector<const Tensor<T>*> in;
    for (int id : layer.inputs()) in.push_back(&tr.values[static_cast<size_t>(id)]);
    auto out = Tensor<T>::uninitialized(batched<T>(n, layer.output_shape()));
    WeightSet set{};
    if (plan && layer.parametric() &&
        static_cast<const LinearLayer<T>&>(layer).keeps_product((*plan)[li], n, set, algorithm)) {
      if (tr.kept.empty()) {
        tr.kept.resize(layers_.size());
        tr.kept_set.assign(layers_.size(), -1);
      }
      if (static_cast<const LinearLayer<T>&>(layer).forward_keeping(in, out, set, tr.kept[li], algorithm))
        tr.kept_set[li] = static_cast<int>(set);
    } else if (layer.parametric() && algorithm != Algorithm::exact) {
      static_cast<const LinearLayer<T>&>(layer).forward_by(in, out, algorithm);
    } else {
      layer.forward(in, out);
    }
    tr.values.push_back(std::move(out));
    for (int id : layer.inputs())
      if (last_use[static_cast<size_t>(id)] == li + 1) tr.values[static_cast<size_t>(id)] = Tensor<T>();
  }
  return tr;
}

template <class T>
Tensor<T> Network<T>::forward(const Tensor<T>& x) const {
  // Like trace(), but each activation is released after its last consumer ran.
  Trace<T> tr = trace_impl(x, true, nullptr, Algorithm::exact);
  return std::move(tr.values[static_cast<size_t>(output_value_)]);
}

template <class T>
void Network<T>::check_rules(const std::vector<RuleSpec>& rules) const {
  DTD_CHECK(rules.size() == layers_.size(), std::invalid_argument, "got ", rules.size(), " rules for ", layers_.size(),
            " layers");
  for (size_t i = 0; i < layers_.size(); ++i) {
    const RuleSpec& r = rules[i];
    const Layer<T>& l = *layers_[i];
    DTD_CHECK(r.eps >= 0, std::invalid_argument, "layer '", l.name(), "': eps must be >= 0, got ", r.eps);
    if (r.kind == RuleKind::alphabeta)
      DTD_CHECK(r.beta >= 0 && std::abs(r.alpha - r.beta - 1) <= 1e-9, std::invalid_argument, "layer '", l.name(),
                "': alpha-beta needs beta >= 0 and alpha - beta = 1, got alpha ", r.alpha, ", beta ", r.beta);
    if (l.parametric() && r.kind == RuleKind::zbox) {
      const auto size = static_cast<size_t>(numel(l.input_shapes()[0]));
      DTD_CHECK(r.low.size() == size && r.high.size() == size, std::invalid_argument, "layer '", l.name(),
                "': zbox bounds hold ", r.low.size(), " and ", r.high.size(), " values, expected ", size,
                " (input shape ", to_string(l.input_shapes()[0]), ")");
    }
  }
}

template <class T>
Plan<T> Network<T>::prepare(const std::vector<RuleSpec>& rules) const {
  detail::adopt_thread_count();
  check_rules(rules);
  Plan<T> plan(layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (layers_[i]->parametric())
      plan[i] = static_cast<const LinearLayer<T>&>(*layers_[i]).prepare(rules[i]);
    else
      static_cast<RuleSpec&>(plan[i]) = rules[i];
  }
  return plan;
}

template <class T>
Tensor<T> Network<T>::relevance(const Trace<T>& tr, const Tensor<T>& r_logits, const Plan<T>& rules,
                                std::vector<LayerReport>* report, Algorithm algorithm) const {
  detail::adopt_thread_count();
  DTD_CHECK(algorithm == Algorithm::exact || (std::is_same_v<T, float>), std::invalid_argument,
            "the winograd algorithm is float32 only (float64 keeps the exact products)");
  DTD_CHECK(rules.size() == layers_.size(), std::invalid_argument, "plan has ", rules.size(), " rules for ",
            layers_.size(), " layers");
  DTD_CHECK(tr.values.size() == layers_.size() + 1 && !tr.values[0].shape.empty(), std::invalid_argument,
            "trace does not belong to this network");
  const int64_t n = tr.values[0].batch();
  for (size_t id = 0; id < tr.values.size(); ++id)
    DTD_CHECK(tr.values[id].data.empty() || tr.values[id].shape == batched<T>(n, value_shape(static_cast<int>(id))),
              std::invalid_argument, "trace does not belong to this network (value ", id, " has shape ",
              to_string(tr.values[id].shape), ")");
  DTD_CHECK(r_logits.shape == batched<T>(n, logits_shape()), std::invalid_argument, "output relevance has shape ",
            to_string(r_logits.shape), ", expected ", to_string(batched<T>(n, logits_shape())));
  std::vector<Tensor<T>> rel(tr.values.size());
  std::vector<bool> has(tr.values.size(), false);
  const Tensor<T> released;  // what a layer sees in place of a forward value it does not declare it reads
  rel[static_cast<size_t>(logits_value_)] = r_logits;
  has[static_cast<size_t>(logits_value_)] = true;
  if (report) report->assign(layers_.size(), LayerReport{std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)});
  auto totals = [n](const Tensor<T>& t, std::vector<double>& acc) {
    const int64_t per = t.sample_size();
    for (int64_t k = 0; k < n; ++k) {
      double s = 0;
      for (int64_t i = 0; i < per; ++i) s += static_cast<double>(t.data[static_cast<size_t>(k * per + i)]);
      acc[static_cast<size_t>(k)] += s;
    }
  };
  for (size_t li = layers_.size(); li-- > 0;) {
    const size_t out_id = li + 1;
    if (!has[out_id]) continue;
    const Layer<T>& layer = *layers_[li];
    if (layer.relevance_is_identity(rules[li]) && !has[static_cast<size_t>(layer.inputs()[0])]) {
      // The relevance passes unchanged: hand the buffer on, with the input's shape.
      const auto id = static_cast<size_t>(layer.inputs()[0]);
      if (report) {
        totals(rel[out_id], (*report)[li].relevance_out);
        totals(rel[out_id], (*report)[li].relevance_in);
      }
      rel[id] = std::move(rel[out_id]);
      rel[id].shape = batched<T>(n, value_shape(static_cast<int>(id)));
      has[id] = true;
      continue;
    }
    // The trace/relevance contract: a layer sees the forward values it declares it reads, and empty tensors for
    // all others, whatever the trace happened to keep. A layer that reads an undeclared value then fails in every
    // graph, not only in those where the trace released it.
    const bool reads_in = layer.relevance_reads_inputs(), reads_out = layer.relevance_reads_output();
    std::vector<const Tensor<T>*> in;
    std::vector<Tensor<T>> r_in;
    for (int id : layer.inputs()) {
      const Tensor<T>& value = tr.values[static_cast<size_t>(id)];
      DTD_CHECK(!reads_in || !value.data.empty(), std::invalid_argument, "layer '", layer.name(),
                "': the trace lacks its input value ", id, ", which its relevance pass reads");
      in.push_back(reads_in ? &value : &released);
      r_in.push_back(Tensor<T>::uninitialized(batched<T>(n, value_shape(id))));
    }
    DTD_CHECK(!reads_out || !tr.values[out_id].data.empty(), std::invalid_argument, "layer '", layer.name(),
              "': the trace lacks its output value, which its relevance pass reads");
    const Tensor<T>& out_value = reads_out ? tr.values[out_id] : released;
    WeightSet set{};
    // A kept product is used only by a pass with the algorithm that made it (a Winograd z+ denominator needs its
    // guard, which a Winograd pass applies).
    if (layer.parametric() && li < tr.kept_set.size() && tr.kept_set[li] >= 0 && tr.algorithm == algorithm &&
        static_cast<const LinearLayer<T>&>(layer).keeps_product(rules[li], n, set, algorithm) &&
        static_cast<int>(set) == tr.kept_set[li] && tr.kept[li].shape == batched<T>(n, layer.output_shape()))
      static_cast<const LinearLayer<T>&>(layer).relevance_from(in, rel[out_id], rules[li], r_in, &tr.kept[li],
                                                               algorithm);
    else if (layer.parametric() && algorithm != Algorithm::exact)
      static_cast<const LinearLayer<T>&>(layer).relevance_from(in, rel[out_id], rules[li], r_in, nullptr, algorithm);
    else
      layer.relevance(in, out_value, rel[out_id], rules[li], r_in);
    if (report) totals(rel[out_id], (*report)[li].relevance_out);
    rel[out_id] = Tensor<T>();
    for (size_t k = 0; k < r_in.size(); ++k) {
      if (report) totals(r_in[k], (*report)[li].relevance_in);
      const auto id = static_cast<size_t>(layer.inputs()[k]);
      if (!has[id]) {
        rel[id] = std::move(r_in[k]);
        has[id] = true;
      } else {
        T* acc = rel[id].ptr();
        const T* add = r_in[k].ptr();
        detail::parallel_blocks(rel[id].size(), [&](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; ++i) acc[i] += add[i];
        });
      }
    }
  }
  if (!has[0]) return Tensor<T>(batched<T>(n, input_shape_), T(0));
  return std::move(rel[0]);
}

template class Network<float>;
template class Network<double>;

}  // namespace dtd
