#pragma once

#include "dtd/layer.hpp"

namespace dtd {

/// A multiplicative gate, inputs [signal, gate]: y = signal * gate, the gate broadcast against the signal (per-sample
/// shapes, NumPy rules: [C, 1, 1] against [C, H, W], or equal shapes). Squeeze-and-excitation, MobileNetV3's
/// HardSigmoid gates, x * sigmoid(x).
/// Relevance: signal-take-all (Arras et al. 2017): R_signal = R_y, R_gate = 0 (the gate is held constant).
/// The gradient rule applies the product rule (which is why relevance_reads_inputs() stays true).
template <class T>
class Gate final : public Layer<T> {
 public:
  Gate(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes);
  void forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const override;
  void relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>& out, const Tensor<T>& r_out,
                 const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const override;

 private:
  std::vector<int64_t> gate_index_;  // per-sample signal element -> per-sample gate element
};

}  // namespace dtd
