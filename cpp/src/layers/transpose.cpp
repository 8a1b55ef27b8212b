#include "transpose.hpp"

#include <algorithm>
#include <numeric>

#include "dtd/error.hpp"

namespace dtd {

template <class T>
Transpose<T>::Transpose(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : IndexMap<T>(spec, std::move(inputs), std::move(input_shapes)) {
  const Shape& x = this->input_shapes()[0];
  const size_t rank = x.size() + 1;
  auto it = spec.ints.find("perm");
  DTD_CHECK(it != spec.ints.end(), ModelError, "transpose layer '", spec.name, "': missing perm");
  const std::vector<int64_t>& perm = it->second;
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> identity(rank);
  std::iota(identity.begin(), identity.end(), 0);
  DTD_CHECK(sorted == identity, ModelError, "transpose layer '", spec.name, "': perm ", to_string(perm),
            " is not a permutation of the ", rank, " axes of [N, ", to_string(x).substr(1));
  DTD_CHECK(perm[0] == 0, ModelError, "transpose layer '", spec.name, "': perm ", to_string(perm),
            " moves the batch axis");
  const Shape in_strides = detail::strides_of(x);
  std::vector<typename IndexMap<T>::Axis> axes;
  for (size_t i = 1; i < rank; ++i) {
    const auto a = static_cast<size_t>(perm[i] - 1);
    std::vector<int64_t> coord(static_cast<size_t>(x[a]));
    std::iota(coord.begin(), coord.end(), 0);
    axes.push_back({in_strides[a], std::move(coord)});
  }
  this->set_map(axes, 0, T(0));
}

template class Transpose<float>;
template class Transpose<double>;

}  // namespace dtd
