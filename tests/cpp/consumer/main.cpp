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
  // explain output 0 from its logit (6) with z+ (the "positive" preset), with the per-layer report
  const dtd::Explainer<float> explainer(net, dtd::ExplainRules::from_preset("positive"));
  const auto ex = explainer.explain(x, dtd::Target::one_class(0), /*report=*/true);
  const auto& rel = ex.relevance;
  const float total = rel.data[0] + rel.data[1] + rel.data[2];
  std::cout << "logit " << ex.logits.data[0] << " relevance total " << total << " (layer " << ex.layers[0].name << ": "
            << ex.layers[0].relevance_out[0] << " in, " << ex.layers[0].relevance_in[0] << " out)\n";
  return std::abs(total - 6.f) < 1e-4f ? 0 : 1;
}
