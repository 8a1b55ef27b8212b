#include "slice.hpp"

#include <algorithm>
#include <numeric>

#include "../geometry.hpp"

namespace dtd {

namespace {

// A per-sample axis from an ONNX axis (counting the batch axis, negative from the end).
size_t sample_axis(const LayerSpec& spec, int64_t given, size_t rank) {
  const int64_t r = static_cast<int64_t>(rank) + 1;
  const int64_t axis = given < 0 ? given + r : given;
  DTD_CHECK(axis >= 1 && axis < r, ModelError, to_string(spec.kind), " layer '", spec.name, "': axis ", given,
            " is out of range or the batch axis (rank ", r, ")");
  return static_cast<size_t>(axis - 1);
}

template <class T>
std::vector<typename IndexMap<T>::Axis> identity_axes(const Shape& x) {
  const Shape strides = detail::strides_of(x);
  std::vector<typename IndexMap<T>::Axis> axes;
  for (size_t i = 0; i < x.size(); ++i) {
    std::vector<int64_t> coord(static_cast<size_t>(x[i]));
    std::iota(coord.begin(), coord.end(), 0);
    axes.push_back({strides[i], std::move(coord)});
  }
  return axes;
}

}  // namespace

template <class T>
Slice<T>::Slice(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : IndexMap<T>(spec, std::move(inputs), std::move(input_shapes)) {
  const Shape& x = this->input_shapes()[0];
  auto get = [&](const char* key) {
    auto it = spec.ints.find(key);
    DTD_CHECK(it != spec.ints.end(), ModelError, "slice layer '", spec.name, "': missing ", key);
    return it->second;
  };
  const std::vector<int64_t> axes = get("axes"), starts = get("starts"), ends = get("ends");
  const std::vector<int64_t> steps = spec.ints.count("steps") ? get("steps") : std::vector<int64_t>(axes.size(), 1);
  DTD_CHECK(starts.size() == axes.size() && ends.size() == axes.size() && steps.size() == axes.size(), ModelError,
            "slice layer '", spec.name, "': axes, starts, ends and steps have ", axes.size(), ", ", starts.size(), ", ",
            ends.size(), " and ", steps.size(), " entries");
  auto map = identity_axes<T>(x);
  std::vector<bool> seen(x.size(), false);
  for (size_t k = 0; k < axes.size(); ++k) {
    const size_t a = sample_axis(spec, axes[k], x.size());
    DTD_CHECK(!seen[a], ModelError, "slice layer '", spec.name, "': axis ", axes[k], " is repeated");
    seen[a] = true;
    const int64_t dim = x[a], step = steps[k];
    DTD_CHECK(step != 0, ModelError, "slice layer '", spec.name, "': step 0 on axis ", axes[k]);
    // ONNX clamping: negative indices count from the end; then [0, dim] for a positive step, [-1, dim - 1] for a
    // negative one (the end is exclusive either way).
    int64_t start = starts[k] < 0 ? starts[k] + dim : starts[k];
    int64_t end = ends[k] < 0 ? ends[k] + dim : ends[k];
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
    } else {
      start = std::clamp<int64_t>(start, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
    }
    // Count first: i += step must not run past int64 for a step of, say, 2^62 (start and end lie in [-1, dim]).
    const int64_t span = step > 0 ? end - start : start - end, stride = step > 0            ? step
                                                                        : step == INT64_MIN ? INT64_MAX
                                                                                            : -step;
    const int64_t count = span <= 0 ? 0 : (span - 1) / stride + 1;
    std::vector<int64_t> coord;
    coord.reserve(static_cast<size_t>(count));
    for (int64_t c = 0; c < count; ++c) coord.push_back(start + (step > 0 ? c * stride : -c * stride));
    DTD_CHECK(!coord.empty(), ModelError, "slice layer '", spec.name, "': the slice [", starts[k], ":", ends[k], ":",
              step, "] of axis ", axes[k], " (length ", dim, ") is empty");
    map[a].coord = std::move(coord);
  }
  this->set_map(map, 0, T(0));
}

template <class T>
Gather<T>::Gather(const LayerSpec& spec, std::vector<int> inputs, std::vector<Shape> input_shapes)
    : IndexMap<T>(spec, std::move(inputs), std::move(input_shapes)) {
  const Shape& x = this->input_shapes()[0];
  const size_t a = sample_axis(spec, detail::int_attr(spec, "axis", 1), x.size());
  auto it = spec.ints.find("indices");
  DTD_CHECK(it != spec.ints.end() && !it->second.empty(), ModelError, "gather layer '", spec.name,
            "': missing indices");
  const bool squeeze = detail::int_attr(spec, "squeeze", 0) != 0;
  DTD_CHECK(!squeeze || it->second.size() == 1, ModelError, "gather layer '", spec.name,
            "': squeeze needs one index, got ", it->second.size());
  std::vector<int64_t> coord;
  for (int64_t i : it->second) {
    DTD_CHECK(i >= -x[a] && i < x[a], ModelError, "gather layer '", spec.name, "': index ", i,
              " is out of range for axis ", a + 1, " of [N, ", to_string(x).substr(1));
    coord.push_back(i < 0 ? i + x[a] : i);
  }
  auto map = identity_axes<T>(x);
  int64_t base = 0;
  if (squeeze) {
    base = map[a].stride * coord[0];
    map.erase(map.begin() + static_cast<std::ptrdiff_t>(a));
  } else {
    map[a].coord = std::move(coord);
  }
  this->set_map(map, base, T(0));
}

template class Slice<float>;
template class Slice<double>;
template class Gather<float>;
template class Gather<double>;

}  // namespace dtd
