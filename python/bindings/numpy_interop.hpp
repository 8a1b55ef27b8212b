// NumPy <-> dtd::Tensor. Out: zero-copy (the tensor's buffer is moved into a capsule that NumPy owns).
// In: one copy into a C-contiguous Tensor (pybind11's forcecast handles dtype conversion and any strides).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <vector>

#include "dtd/model_spec.hpp"
#include "dtd/network.hpp"
#include "dtd/tensor.hpp"

namespace dtd::py_interop {

namespace py = pybind11;

template <class T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

/// Holds a Plan so that pybind11 binds it as an opaque class (stl.h would convert a bare std::vector to a list).
template <class T>
struct PlanHolder {
  Plan<T> plan;
};

template <class T>
py::array_t<T> to_numpy(Tensor<T>&& t) {
  auto* owner = new Tensor<T>(std::move(t));
  py::capsule free_when_done(owner, [](void* p) { delete static_cast<Tensor<T>*>(p); });
  std::vector<py::ssize_t> shape(owner->shape.begin(), owner->shape.end());
  return py::array_t<T>(shape, owner->ptr(), free_when_done);
}

template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
  Tensor<T> t;
  t.shape = {static_cast<int64_t>(v.size())};
  t.data.assign(v.begin(), v.end());
  return to_numpy(std::move(t));
}

// The copies go through memcpy: a C-contiguous array of the right dtype reaches us without a forcecast copy even
// when its buffer is not aligned for T (a view at an odd byte offset), and reading it as T* would be undefined.
template <class T>
Tensor<T> from_numpy(const CArray<T>& a) {
  Tensor<T> t;
  t.shape.assign(a.shape(), a.shape() + a.ndim());
  t.data.resize(static_cast<size_t>(a.size()));
  if (a.size() > 0) std::memcpy(t.data.data(), static_cast<const void*>(a.data()), sizeof(T) * a.size());
  return t;
}

inline Array array_from_numpy(const CArray<double>& a) {
  Array out;
  out.shape.assign(a.shape(), a.shape() + a.ndim());
  out.data.resize(static_cast<size_t>(a.size()));
  if (a.size() > 0) std::memcpy(out.data.data(), static_cast<const void*>(a.data()), sizeof(double) * a.size());
  return out;
}

inline py::array_t<double> array_to_numpy(const Array& a) {
  std::vector<py::ssize_t> shape(a.shape.begin(), a.shape.end());
  py::array_t<double> out(shape);
  std::copy(a.data.begin(), a.data.end(), out.mutable_data());
  return out;
}

}  // namespace dtd::py_interop
