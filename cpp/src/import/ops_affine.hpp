// Constant affine maps beyond the plain cases of ops.cpp: the legacy broadcast attribute of opset < 7, sums of
// constants of different shapes, a constant shift folded into the next conv/dense layer's bias, and a
// BatchNormalization folded into a layer whose output units are not its channels (NumPy broadcasting, or its error).
//
// Like ops.cpp, this file and every user of sequential_row_sums are compiled with -ffp-contract=off
// (cpp/CMakeLists.txt): one rounding per operation, as NumPy's element-wise ufuncs.
#pragma once

#include <cstddef>
#include <vector>

#include "context.hpp"

namespace dtd::importer {

/// For each row r of the row-major `rows` x `columns` matrix, the sum over j of matrix[r, j] * factor(r, j), each
/// product rounded, then the products added left to right: ((p_0 + p_1) + p_2) + ... (np.add.accumulate's recurrence;
/// 0.0 for no columns). Reproducible bit for bit, unlike NumPy's pairwise sum or a BLAS product.
template <class Factor>
std::vector<double> sequential_row_sums(const double* matrix, size_t rows, size_t columns, Factor factor) {
  std::vector<double> out(rows, 0.0);
  if (columns == 0) return out;
  for (size_t r = 0; r < rows; ++r) {
    const double* row = matrix + r * columns;
    double total = row[0] * factor(r, size_t{0});
    for (size_t j = 1; j < columns; ++j) {
      const double product = row[j] * factor(r, j);
      total = total + product;
    }
    out[r] = total;
  }
  return out;
}

/// `bias = extra if bias is None else bias + extra` for the bias entry of `weights` (absent: none).
void add_to_bias(std::map<std::string, Array>& weights, std::vector<double> extra);

/// Constant input `index` of `node` in NumPy broadcasting against data input `data`; before opset 7 the legacy
/// broadcast and axis attributes are translated to that form.
Grid constant_operand(const Context& ctx, const Node& node, size_t index, size_t data, const char* what);

/// The sum of Add's constant inputs `consts` (each as constant_operand gives it): 0 + c_1 + c_2 ... in float64 with
/// NumPy broadcasting (a ModelLoadError with NumPy's ValueError for shapes that do not broadcast).
Grid constant_sum(const Context& ctx, const Node& node, const std::vector<size_t>& consts, size_t data);

/// A BatchNormalization folded into the conv/dense `layer` before it: weight * factor per output unit and bias = (bias
/// or zeros(channels)) * factor + offset, NumPy broadcasting the unit axis against the channels (`factor` and `offset`
/// have one value per channel).
void fold_batchnorm(const Node& node, Draft& layer, const std::vector<double>& factor,
                    const std::vector<double>& offset, int64_t channels);

}  // namespace dtd::importer
