// The layer interface. A layer is immutable after construction, so one network serves many threads.
// Shapes here are per sample (batch axis excluded); tensors passed to forward/relevance carry the batch axis.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dtd/model_spec.hpp"
#include "dtd/rules.hpp"
#include "dtd/tensor.hpp"

namespace dtd {

template <class T>
class Layer {
 public:
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  const std::string& name() const { return name_; }
  LayerKind kind() const { return kind_; }
  /// Value ids of the inputs (0 is the network input, i + 1 the output of layer i).
  const std::vector<int>& inputs() const { return inputs_; }
  const std::vector<Shape>& input_shapes() const { return input_shapes_; }
  const Shape& output_shape() const { return output_shape_; }

  /// out = layer(in...). `out` is resized by the caller to [N, output_shape...].
  virtual void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const = 0;

  /// Redistributes the relevance `r_out` (shape of `out`) onto the inputs: `r_in[k]` (allocated by the caller
  /// with input k's shape) receives input k's share; it is overwritten, not accumulated.
  virtual void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                         const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const = 0;

  /// Whether relevance() reads the forward activations of the inputs / of the output. The trace keeps only
  /// the activations some relevance() reads.
  virtual bool relevance_reads_inputs() const { return true; }
  virtual bool relevance_reads_output() const { return false; }

  /// True when relevance() under `rule` copies r_out unchanged to the one input (ReLU under DTD/LRP rules,
  /// Flatten, Reshape): the network then hands the buffer on instead of calling it.
  virtual bool relevance_is_identity(const RuleSpec& rule) const {
    (void)rule;
    return false;
  }

  /// True for dense and conv: the layers that DTD/LRP rules apply to.
  virtual bool parametric() const { return false; }
  /// Multiply-adds per sample of the forward pass (0 for layers without weights).
  virtual int64_t macs() const { return 0; }
  /// Parameters (weights and biases).
  virtual int64_t parameter_count() const { return 0; }

 protected:
  Layer(std::string name, LayerKind kind, std::vector<int> inputs, std::vector<Shape> input_shapes)
      : name_(std::move(name)), kind_(kind), inputs_(std::move(inputs)), input_shapes_(std::move(input_shapes)) {}
  Shape output_shape_;

 private:
  std::string name_;
  LayerKind kind_;
  std::vector<int> inputs_;
  std::vector<Shape> input_shapes_;
};

/// The weight sets rules need: w, w+, w-, w^2, and all ones (flat rule).
enum class WeightSet { plain, positive, negative, square, ones };

/// The outputs of a Winograd z+ denominator that LinearLayer::winograd_guard recomputed by the direct sum (flat
/// indices into [N, output...], ascending), and whether that sum is nonzero (only those carry relevance down).
struct ExactOutputs {
  std::vector<int64_t> index;
  std::vector<char> nonzero;
};

/// A linear map with a bias (dense, conv). Exposes the two primitives every rule is built from (DESIGN.md):
/// `apply` (the forward product with a weight set, no bias) and `apply_transposed` (the product with the
/// transposed weights). The derived weight sets are computed once, on first use, and then shared.
template <class T>
class LinearLayer : public Layer<T> {
 public:
  bool parametric() const override { return true; }
  int64_t parameter_count() const override { return weight_count() + static_cast<int64_t>(bias_.size()); }

  int64_t in_size() const { return numel(this->input_shapes()[0]); }
  int64_t out_size() const { return numel(this->output_shape()); }
  int64_t weight_count() const { return static_cast<int64_t>(weight_.size()); }
  bool has_bias() const { return !bias_.empty(); }
  /// Bias per output channel (dense: per output unit); empty when the layer has none.
  const std::vector<T>& bias() const { return bias_; }
  /// A weight set, laid out like the plain weights.
  const T* weights(WeightSet set) const;

  /// y[n] = x[n] (*) w for n < batch, without bias. x: [batch, input_shape], y: [batch, output_shape].
  virtual void apply(const T* x, int64_t batch, const T* w, T* y) const = 0;
  /// x[n] = w^T (*) g[n]: the product with the transposed map (the input-gradient of `apply`). Overwrites x.
  virtual void apply_transposed(const T* g, int64_t batch, const T* w, T* x) const = 0;
  /// apply / apply_transposed with one of the weight sets. A layer may compute w+ and w- on the fly from w
  /// instead of storing them (Dense does for large matrices at small batch, where the product is memory-bound).
  virtual void apply_set(const T* x, int64_t batch, WeightSet set, T* y) const { apply(x, batch, weights(set), y); }
  virtual void apply_transposed_set(const T* g, int64_t batch, WeightSet set, T* x) const {
    apply_transposed(g, batch, weights(set), x);
  }
  /// x_pos = w+^T (*) g and x_neg = w-^T (*) g (z^beta's two transposed products); a layer may make both in one
  /// sweep over w.
  virtual void apply_transposed_signed(const T* g, int64_t batch, T* x_pos, T* x_neg) const {
    apply_transposed_set(g, batch, WeightSet::positive, x_pos);
    apply_transposed_set(g, batch, WeightSet::negative, x_neg);
  }
  /// y = x (*) w and z = x (*) w+ in one sweep over the weights, where the layer has such a path for this batch
  /// (returns false otherwise, y and z untouched).
  virtual bool apply_with_positive(const T* x, int64_t batch, T* y, T* z) const {
    (void)x, (void)batch, (void)y, (void)z;
    return false;
  }
  virtual bool fused_positive(int64_t batch) const {
    (void)batch;
    return false;
  }
  /// Whether the layer has a Winograd path (Algorithm::winograd); the winograd_* functions below require it.
  virtual bool winograd_ok() const { return false; }
  /// Whether Winograd is worth running for `batch` samples where the layer has it: too few output tiles leave its
  /// products too narrow to beat the exact path's (Conv2d).
  virtual bool winograd_pays(int64_t batch) const {
    (void)batch;
    return true;
  }
  /// Whether `algorithm` runs this layer by Winograd for `batch` samples (the forward, the kept product and the
  /// relevance all decide by this).
  bool uses_winograd(Algorithm algorithm, int64_t batch) const {
    return algorithm == Algorithm::winograd && winograd_ok() && winograd_pays(batch);
  }
  /// apply_set by Winograd F(2x2, 3x3) (sets plain, positive, negative, square).
  virtual void winograd_apply(const T* x, int64_t batch, WeightSet set, T* y) const { apply_set(x, batch, set, y); }
  /// y = x (*) w and z = x (*) w+ by Winograd, from one transform of x.
  virtual void winograd_apply_with_positive(const T* x, int64_t batch, T* y, T* z) const {
    winograd_apply(x, batch, WeightSet::plain, y);
    winograd_apply(x, batch, WeightSet::positive, z);
  }
  /// For z = x (*) w+ by Winograd with x >= 0: recomputes by the direct sum every output below the scale of
  /// Winograd's rounding error there (so z >= 0 everywhere and an exact zero stays exactly zero), listed in `exact`.
  virtual void winograd_guard(const T* x, int64_t batch, T* z, ExactOutputs& exact) const {
    (void)x, (void)batch, (void)z, (void)exact;
  }
  /// apply_transposed_set by Winograd. With `exact` (from winograd_guard): g at those outputs is left out of the
  /// Winograd pass (so a large g_j from a tiny denominator cannot spread rounding errors over its tile) and added
  /// by the direct sum where nonzero (where the denominator is exactly 0 its terms are all exactly 0).
  virtual void winograd_apply_transposed(const T* g, int64_t batch, WeightSet set, T* x,
                                         const ExactOutputs* exact) const {
    (void)exact;
    apply_transposed_set(g, batch, set, x);
  }
  /// y[n] += b broadcast over the output (per channel for conv).
  virtual void add_bias(const T* b, int64_t batch, T* y) const = 0;

  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;

  /// The weight set whose product with the input `rule`'s relevance pass starts from (its denominator before
  /// bias and constant terms), when forward_keeping() can produce it for less than a separate product: w for
  /// z^beta and epsilon (it is the forward's own product), w+ for z+ where the layer computes both products in one
  /// sweep over its weights (Dense at small batch). Returns false otherwise.
  bool keeps_product(const RuleSpec& rule, int64_t batch, WeightSet& set, Algorithm algorithm = Algorithm::exact) const;
  /// The forward pass, also writing `kept` = input (*) weights(set) (no bias) for a set keeps_product() named.
  /// Returns false, `kept` left empty, where the input rules it out (negative inputs for w+).
  bool forward_keeping(const std::vector<const Tensor<T>*>& in, Tensor<T>& out, WeightSet set, Tensor<T>& kept,
                       Algorithm algorithm = Algorithm::exact) const;
  /// forward() by `algorithm` (Winograd where winograd_ok()).
  void forward_by(const std::vector<const Tensor<T>*>& in, Tensor<T>& out, Algorithm algorithm) const;
  /// relevance() starting from a product kept by forward_keeping() for the same input (`kept` null: none), with
  /// the products by `algorithm` where the layer and the rule have that path (z+ on non-negative inputs, z^beta,
  /// w^2; see Algorithm).
  void relevance_from(const std::vector<const Tensor<T>*>& in, const Tensor<T>& r_out, const PreparedRule<T>& rule,
                      std::vector<Tensor<T>>& r_in, const Tensor<T>* kept,
                      Algorithm algorithm = Algorithm::exact) const;
  /// Converts the rule and precomputes what does not depend on the input (see PreparedRule).
  PreparedRule<T> prepare(const RuleSpec& rule) const;

 protected:
  LinearLayer(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  /// Reads "weight" (checked against `weight_shape`) and the optional "bias" (checked against `bias_size`).
  void load_weights(const LayerSpec& spec, const Shape& weight_shape, int64_t bias_size);

 private:
  std::vector<T> weight_;
  std::vector<T> bias_;
  mutable std::vector<T> derived_[4];  // positive, negative, square, ones
  mutable std::once_flag derived_once_[4];
};

}  // namespace dtd
