// The ModelSpec's own functions (dtd/model_spec.hpp), apart from the layers: the importer (and its fuzz target, which
// links no layer code) names layer kinds with them.
#include "dtd/model_spec.hpp"

namespace dtd {

const char* to_string(LayerKind kind) {
  switch (kind) {
    case LayerKind::dense: return "dense";
    case LayerKind::conv: return "conv";
    case LayerKind::relu: return "relu";
    case LayerKind::maxpool: return "maxpool";
    case LayerKind::avgpool: return "avgpool";
    case LayerKind::globalavgpool: return "globalavgpool";
    case LayerKind::flatten: return "flatten";
    case LayerKind::reshape: return "reshape";
    case LayerKind::add: return "add";
    case LayerKind::concat: return "concat";
    case LayerKind::softmax: return "softmax";
    case LayerKind::logsoftmax: return "logsoftmax";
    case LayerKind::affine: return "affine";
    case LayerKind::layernorm: return "layernorm";
    case LayerKind::globalmaxpool: return "globalmaxpool";
    case LayerKind::activation: return "activation";
    case LayerKind::gate: return "gate";
    case LayerKind::transpose: return "transpose";
    case LayerKind::slice: return "slice";
    case LayerKind::gather: return "gather";
    case LayerKind::pad: return "pad";
    case LayerKind::lrn: return "lrn";
  }
  return "?";
}

}  // namespace dtd
