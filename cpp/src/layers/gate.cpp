#include "gate.hpp"

#include <algorithm>

#include "../checked.hpp"
#include "../parallel.hpp"
#include "dtd/error.hpp"

namespace dtd {

template <class T>
Gate<T>::Gate(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : Layer<T>(spec.name, spec.kind, std::move(inputs), std::move(input_shapes)) {
  const Shape& signal = this->input_shapes()[0];
  const Shape& gate = this->input_shapes()[1];
  bool fits = gate.size() <= signal.size();
  const size_t lead = fits ? signal.size() - gate.size() : 0;
  for (size_t k = 0; fits && k < gate.size(); ++k) fits = gate[k] == 1 || gate[k] == signal[lead + k];
  DTD_CHECK(fits, ModelError, "gate layer '", spec.name, "': the gate of shape ", to_string(gate),
            " does not broadcast against the signal of shape ", to_string(signal));
  DTD_CHECK(spec.ints.empty() && spec.floats.empty() && spec.weights.empty(), ModelError, "gate layer '", spec.name,
            "' takes no attributes or weights");
  this->output_shape_ = signal;
  const int64_t size = detail::checked_numel(signal, detail::where(spec, "signal shape"));
  gate_index_.resize(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) {
    int64_t rem = i, src = 0, stride = 1;
    for (size_t k = signal.size(); k-- > lead;) {
      const int64_t coord = rem % signal[k];
      rem /= signal[k];
      const int64_t gd = gate[k - lead];
      if (gd != 1) src += coord * stride;
      stride *= gd;
    }
    gate_index_[static_cast<size_t>(i)] = src;
  }
}

template <class T>
void Gate<T>::forward(const std::vector<const Tensor<T>*>& in, Tensor<T>& out) const {
  const T* s = in[0]->ptr();
  const T* g = in[1]->ptr();
  T* y = out.ptr();
  const int64_t per = in[0]->sample_size(), gper = in[1]->sample_size();
  const int64_t* idx = gate_index_.data();
  detail::parallel_blocks(out.size(), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = s[i] * g[(i / per) * gper + idx[i % per]];
  });
}

template <class T>
void Gate<T>::relevance(const std::vector<const Tensor<T>*>& in, const Tensor<T>&, const Tensor<T>& r_out,
                        const PreparedRule<T>& rule, std::vector<Tensor<T>>& r_in) const {
  const T* r = r_out.ptr();
  T* r_signal = r_in[0].ptr();
  T* r_gate = r_in[1].ptr();
  std::fill(r_in[1].data.begin(), r_in[1].data.end(), T(0));
  if (rule.kind != RuleKind::gradient) {
    std::copy(r, r + r_out.size(), r_signal);
    return;
  }
  // Product rule: d y / d signal = gate; d y / d gate = signal, summed over the positions the gate is broadcast to.
  const T* s = in[0]->ptr();
  const T* g = in[1]->ptr();
  const int64_t n = r_out.batch(), per = r_out.sample_size(), gper = in[1]->sample_size();
  const int64_t* idx = gate_index_.data();
  detail::parallel_for(n, [&](int64_t k) {
    const T* rk = r + k * per;
    const T* sk = s + k * per;
    const T* gk = g + k * gper;
    T* dk = r_signal + k * per;
    T* ek = r_gate + k * gper;
    for (int64_t i = 0; i < per; ++i) {
      dk[i] = gk[idx[i]] * rk[i];
      ek[idx[i]] += sk[i] * rk[i];
    }
  });
}

template class Gate<float>;
template class Gate<double>;

}  // namespace dtd
