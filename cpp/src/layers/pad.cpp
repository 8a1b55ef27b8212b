#include "pad.hpp"

#include <algorithm>

#include "../checked.hpp"
#include "../geometry.hpp"

namespace dtd {

using detail::concat;

template <class T>
Pad<T>::Pad(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : IndexMap<T>(spec, std::move(inputs), std::move(input_shapes)) {
  const Shape& x = this->input_shapes()[0];
  const size_t rank = x.size() + 1;
  const std::vector<int64_t> pads = detail::ints(spec, "pads", 2 * rank, std::vector<int64_t>(2 * rank, 0));
  DTD_CHECK(pads[0] == 0 && pads[rank] == 0, ModelError, "pad layer '", spec.name, "': pads ", to_string(pads),
            " pad the batch axis");
  const int64_t mode = detail::int_attr(spec, "mode", kPadConstant);
  DTD_CHECK(mode >= kPadConstant && mode <= kPadWrap, ModelError, "pad layer '", spec.name, "': unknown mode ", mode);
  auto value = spec.floats.find("value");
  const double fill = value == spec.floats.end() ? 0.0 : value->second;
  const Shape strides = detail::strides_of(x);
  std::vector<typename IndexMap<T>::Axis> map;
  for (size_t a = 0; a < x.size(); ++a) {
    const int64_t dim = x[a], begin = pads[a + 1], end = pads[rank + a + 1];
    const std::string what = concat("pad layer '", spec.name, "': pads of axis ", a + 1);
    const int64_t extent = detail::checked_add(detail::checked_add(dim, begin, what), end, what);
    DTD_CHECK(extent >= 1, ModelError, "pad layer '", spec.name, "': pads ", begin, " and ", end, " of axis ", a + 1,
              " (length ", dim, ") leave nothing");
    DTD_CHECK(mode != kPadReflect || (begin < dim && end < dim), ModelError, "pad layer '", spec.name,
              "': reflect pads ", begin, " and ", end, " of axis ", a + 1, " must be smaller than its length ", dim);
    detail::check_activation(extent, what, " give an axis that");
    std::vector<int64_t> coord(static_cast<size_t>(extent));
    for (int64_t o = 0; o < extent; ++o) {
      int64_t i = o - begin;
      if (i < 0 || i >= dim) {
        switch (mode) {
          case kPadConstant: i = -1; break;
          case kPadReflect: i = i < 0 ? -i : 2 * (dim - 1) - i; break;
          case kPadEdge: i = std::clamp<int64_t>(i, 0, dim - 1); break;
          default: i = ((i % dim) + dim) % dim; break;
        }
      }
      coord[static_cast<size_t>(o)] = i;
    }
    map.push_back({strides[a], std::move(coord)});
  }
  this->set_map(map, 0, static_cast<T>(fill));
}

template class Pad<float>;
template class Pad<double>;

}  // namespace dtd
