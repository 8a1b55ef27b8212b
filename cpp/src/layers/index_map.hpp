#pragma once

#include "dtd/layer.hpp"

namespace dtd {

/// A layer whose output is a fixed selection of input entries: `out[n, j] = in[n, source[j]]`, or `fill` where
/// `source[j] < 0`. Transpose, Slice, Gather and Pad are such maps (their constructors compute the map). Relevance
/// and gradient alike are the adjoint of the map: `r_in[n, source[j]] += r_out[n, j]`, zero for input entries
/// no output reads; the relevance of fill positions is dropped (the per-layer report shows it).
template <class T>
class IndexMap : public Layer<T> {
 public:
  bool relevance_reads_inputs() const override { return false; }
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;

  /// One output axis of a map: the input stride of the axis it reads and, per output position, the input
  /// coordinate along that axis (-1: a fill position).
  struct Axis {
    int64_t stride;
    std::vector<int64_t> coord;
  };

 protected:
  IndexMap(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  /// Sets the output shape (one entry per axis) and the map: source[j] = base + sum_i stride_i * coord_i[o_i].
  void set_map(const std::vector<Axis>& axes, int64_t base, T fill);

 private:
  std::vector<int64_t> source_;  // per output element of one sample: the input element it copies, or -1
  T fill_ = T(0);
};

namespace detail {
/// Row-major strides of a shape.
Shape strides_of(const Shape& shape);
}  // namespace detail

}  // namespace dtd
