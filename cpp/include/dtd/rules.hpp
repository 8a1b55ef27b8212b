// Relevance rules (RULES.md). A RuleSpec is attached to every layer of a network for one relevance pass:
// parametric layers (dense, conv) use `kind`, `eps`, `gamma`, `bias`, `low`, `high`; pooling and Add use their
// mode and `eps`; the others ignore it.
#pragma once

#include <vector>

namespace dtd {

enum class RuleKind {
  zplus,      // z+ : ReLU layers
  wsquare,    // w^2: first layer, unbounded input
  zbox,       // z^beta: first layer, bounded input low <= a <= high
  epsilon,    // LRP-epsilon (eps = 0: LRP-0)
  gamma,      // LRP-gamma
  alphabeta,  // LRP-alpha-beta: alpha times the positive contributions' share minus beta times the negative ones'
  flat,       // flat: uniform over in-bounds taps
  gradient,   // not a relevance rule: every layer passes the gradient back (sensitivity analysis)
};
const char* to_string(RuleKind kind);

enum class MaxPoolMode { winner_take_all, proportional };
enum class AddMode { zplus, proportional };
/// Average pooling (and global average pooling): in proportion to the inputs (the z-rule of the pooled sum), or
/// flat: uniform over each window's in-bounds taps, whatever the input (the LRP Toolbox's flat/ww presets).
enum class AvgPoolMode { proportional, flat };

/// How a relevance pass computes the products of qualifying layers (chosen per call, Explainer::explain):
/// `exact` the direct sums (im2col + GEMM); `winograd` Winograd F(2x2, 3x3) for float32 stride-1, undilated,
/// ungrouped 2-D 3x3 convolutions (the forward, the z+ / z^beta denominators and the transposed passes of z+, z^beta
/// and w^2) with at least 32 2x2 output tiles over the batch, the exact path for every other layer and rule
/// (LinearLayer::uses_winograd, README "Algorithms").
enum class Algorithm { exact, winograd };
const char* to_string(Algorithm algorithm);

struct RuleSpec {
  RuleKind kind = RuleKind::zplus;
  double eps = 1e-6;  // stabilizer: stab(z) = z + eps * (z >= 0 ? 1 : -1), see eps_absolute
  // w^2 and flat, whose denominators do not depend on the input, scale eps by |z| unless eps_absolute is set:
  // stab(z) = z + eps |z| s(z), so they absorb at most eps / (1 + eps) of the relevance whatever the weights' scale
  // (an absolute 1e-6 absorbs half of it where sum_i w_ij^2 is 1e-6, as in BatchNorm-folded first layers). With
  // eps_absolute they use the absolute form above, as every other rule does (zennit's convention).
  bool eps_absolute = false;
  double gamma = 0.25;             // gamma rule only
  double alpha = 1.0, beta = 0.0;  // alpha-beta rule only: alpha - beta = 1 (alpha 1, beta 0: z+ on ReLU inputs)
  bool bias = false;  // z+: add b+; w^2: add b^2; gamma: add b + gamma b+; alpha-beta: b+ and b-. Epsilon: always.
  std::vector<double> low, high;  // zbox: bounds with the layer's per-sample input shape (already broadcast)
  MaxPoolMode maxpool = MaxPoolMode::winner_take_all;
  AddMode add = AddMode::zplus;
  AvgPoolMode avgpool = AvgPoolMode::proportional;
};

/// A RuleSpec ready for one layer of a Network<T>: the bounds in T, and the terms of the denominator that do not
/// depend on the input, computed once (z^beta: sum_i l_i w+_ij + h_i w-_ij; w^2 and flat: the whole
/// denominator, per output position).
template <class T>
struct PreparedRule : RuleSpec {
  std::vector<T> low_t, high_t;
  std::vector<T> constant;
};

}  // namespace dtd
