// Pattern fusion on the ONNX graph before conversion: the erf form of GELU and the decomposed LayerNormalization, each
// replaced by one node that its converter (ops_act.cpp, ops_norm.cpp) turns into one layer.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "ops.hpp"

namespace dtd::importer {

/// The node that takes the place of a pattern's last node, and its converter.
struct FusedNode {
  ox::Node proto;
  Converter convert;
};

/// The node indices a fusion removes, and the fused node at the index of each pattern's last node.
struct Fusion {
  std::set<size_t> absorbed;
  std::map<size_t, FusedNode> replacements;
};

/// The fusable patterns among `graph`'s nodes (`order`: the nodes to convert, topologically).
/// `consts` are the decoded initializers, `output` the graph output's name, `names` the nodes' unique names (a fused
/// node takes the name of the node its pattern is keyed on), `opset` the default-domain opset.
Fusion find_fusions(const ox::Graph& graph, const std::vector<size_t>& order,
                    const std::map<std::string, Constant>& consts, const std::string& output,
                    const std::vector<std::string>& names, int64_t opset);

}  // namespace dtd::importer
