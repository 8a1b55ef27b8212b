// A C++ service embedding dtd: builds a network from a ModelSpec and explains one input.
#include <dtd/dtd.hpp>
#include <iostream>

int main() {
  dtd::ModelSpec spec;
  spec.input_name = "x";
  spec.input_shape = {3};
  dtd::LayerSpec dense;
  dense.name = "fc";
  dense.kind = dtd::LayerKind::dense;
  dense.inputs = {"x"};
  dense.output = "y";
  dense.weights["weight"] = dtd::Array{{2, 3}, {1, 2, 3, -1, 0.5, 1}};
  spec.layers = {dense};
  spec.output = "y";
  dtd::Network<float> net(spec);
  dtd::Tensor<float> x({1, 3});
  x.data = {1.f, 1.f, 1.f};
  auto trace = net.trace(x);
  dtd::Tensor<float> r({1, 2}, 0.f);
  r.data[0] = trace.values[1].data[0];  // explain output 0 from its logit (6)
  auto rel = net.relevance(trace, r, std::vector<dtd::RuleSpec>(net.size()));
  const float total = rel.data[0] + rel.data[1] + rel.data[2];
  std::cout << "logit " << r.data[0] << " relevance total " << total << "\n";
  return std::abs(total - 6.f) < 1e-4f ? 0 : 1;
}
