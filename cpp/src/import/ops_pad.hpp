// The Pad converter and the folding of constant pads into the Conv / AveragePool / MaxPool after them.
#pragma once

#include <string>
#include <vector>

#include "context.hpp"

namespace dtd::importer {

/// Pad of a data tensor (per-sample axes only; negative pads crop), every opset's form.
void convert_pad(Context& ctx, const Node& node);

/// Moves each constant pad whose only consumer is a Conv (value 0), an AveragePool with count_include_pad=1 (value 0)
/// or a MaxPool (value -inf), none with auto_pad SAME_* or ceil_mode=1, into that layer's pads. Returns the drafts of
/// ctx.layers (in order) less the folded pad layers; `output` is the graph output (a pad producing it stays).
std::vector<Draft*> fold_pads_into_consumers(Context& ctx, const std::string& output);

}  // namespace dtd::importer
