// dtd::Network: a DAG of layers built from a ModelSpec, run in topological order. Immutable after
// construction and safe to share between threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dtd/layer.hpp"
#include "dtd/model_spec.hpp"
#include "dtd/rules.hpp"
#include "dtd/tensor.hpp"

namespace dtd {

/// The activations of one forward pass: values[0] is the input, values[i + 1] the output of layer i. Values that
/// the relevance pass does not read (e.g. pre-ReLU outputs) are released during the pass and left empty.
template <class T>
struct Trace {
  std::vector<Tensor<T>> values;
  /// Per layer, for a trace made with a plan: the product with the weights that layer's rule starts from, where
  /// the forward pass produced it for less than the relevance pass would pay (LinearLayer::keeps_product), and
  /// which weight set it used (-1: none kept).
  std::vector<Tensor<T>> kept;
  std::vector<int> kept_set;
  /// The algorithm the forward pass ran with (the kept products are only used by a relevance pass with the same).
  Algorithm algorithm = Algorithm::exact;
};

/// The rules of one relevance pass, prepared for a network: one per layer.
template <class T>
using Plan = std::vector<PreparedRule<T>>;

/// Relevance totals of one layer in one relevance pass, per sample: `relevance_out` arrived at the layer's output
/// from above, `relevance_in` is what the layer passed on to its input(s). Their difference was absorbed
/// (biases, stabilizers, dead units) or created.
struct LayerReport {
  std::vector<double> relevance_out;
  std::vector<double> relevance_in;
};

template <class T>
class Network {
 public:
  /// Builds the layers, checking every shape and attribute; throws ModelError naming the layer.
  explicit Network(const ModelSpec& spec);
  ~Network();
  Network(Network&&) noexcept;
  Network& operator=(Network&&) noexcept;

  const Shape& input_shape() const { return input_shape_; }
  /// Per-sample shape of the network's output (after a softmax head, if any).
  const Shape& output_shape() const;
  /// Value id of the logits: the output, or the input of a softmax/logsoftmax head.
  int logits_value() const { return logits_value_; }
  const Shape& logits_shape() const;
  /// Per-sample shape of value `id` (0: the input, i + 1: the output of layer i).
  const Shape& value_shape(int id) const;
  size_t size() const { return layers_.size(); }
  const Layer<T>& layer(size_t i) const { return *layers_[i]; }
  /// Index of the first parametric layer (dense/conv) in topological order, or -1.
  int first_parametric() const;

  /// Runs the network and keeps every activation. `x`: [N, input_shape...]; throws std::invalid_argument if
  /// its shape does not match. With the plan of the relevance pass to come, the forward pass also keeps the
  /// products that pass would otherwise compute again (z^beta's and epsilon's denominators are the forward's own
  /// product; Dense at small batch computes z+'s in the same sweep over its weights).
  /// `algorithm`: Winograd for the layers that have it (Algorithm), for this call only.
  Trace<T> trace(const Tensor<T>& x, const Plan<T>* plan = nullptr, Algorithm algorithm = Algorithm::exact) const;
  /// The network's output for `x` (what the ONNX model returns).
  Tensor<T> forward(const Tensor<T>& x) const;

  /// Checks `rules` (one per layer) and precomputes what does not depend on the input (bounds terms of z^beta,
  /// the denominators of w^2 and flat). Reuse the plan across calls with the same rules.
  Plan<T> prepare(const std::vector<RuleSpec>& rules) const;

  /// Backward relevance pass from `r_logits` ([N, logits_shape...]) down to the input, one rule per layer.
  /// Fills `report` (one entry per layer) when given. `algorithm`: as for trace(), for this call only.
  Tensor<T> relevance(const Trace<T>& trace, const Tensor<T>& r_logits, const Plan<T>& plan,
                      std::vector<LayerReport>* report = nullptr, Algorithm algorithm = Algorithm::exact) const;
  /// The same with rules prepared for this call only.
  Tensor<T> relevance(const Trace<T>& trace, const Tensor<T>& r_logits, const std::vector<RuleSpec>& rules,
                      std::vector<LayerReport>* report = nullptr) const {
    return relevance(trace, r_logits, prepare(rules), report);
  }

  /// Throws std::invalid_argument if `rules` cannot be used with this network (wrong count, a rule kind on a
  /// layer it cannot apply to, bounds of the wrong size).
  void check_rules(const std::vector<RuleSpec>& rules) const;

 private:
  Trace<T> trace_impl(const Tensor<T>& x, bool release, const Plan<T>* plan, Algorithm algorithm) const;

  Shape input_shape_;
  std::vector<std::unique_ptr<Layer<T>>> layers_;
  int output_value_ = 0;
  int logits_value_ = 0;
};

extern template class Network<float>;
extern template class Network<double>;

}  // namespace dtd
