// A small reader and writer of NumPy's .npy files (format versions 1.0, 2.0 and 3.0) for float32 and float64
// arrays: little-endian ('<f4', '<f8'), C order. Anything else (another dtype, big-endian, Fortran order, a
// truncated file or trailing bytes, a malformed header) is an NpyError naming the file and what is wrong.
// Part of the embedding example, not of dtd: the core takes tensors and leaves file formats to the caller.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace npy {

class NpyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One array: its shape, and its elements (row-major) in `f4` or `f8` depending on `dtype` ("float32", "float64").
struct Array {
  std::vector<int64_t> shape;
  std::string dtype;
  std::vector<float> f4;
  std::vector<double> f8;
};

/// "(2, 3)", "(3,)", "()": Python's repr of the shape tuple, as .npy headers and messages write it.
inline std::string shape_repr(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

namespace detail {

inline bool host_is_little_endian() {
  const uint16_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

// The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  void parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
    bool seen_descr = false, seen_order = false, seen_shape = false;
    skip();
    expect('{');
    for (;;) {
      skip();
      if (peek() == '}') break;
      const std::string key = quoted();
      skip();
      expect(':');
      skip();
      if (key == "descr") {
        descr = quoted();
        seen_descr = true;
      } else if (key == "fortran_order") {
        fortran = boolean();
        seen_order = true;
      } else if (key == "shape") {
        shape = tuple();
        seen_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      skip();
      if (peek() != '}') fail("expected ',' or '}'");
    }
    ++i_;
    if (!seen_descr || !seen_order || !seen_shape) fail("the header lacks 'descr', 'fortran_order' or 'shape'");
  }

 private:
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string quoted() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    const size_t end = s_.find(q, i_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    fail("expected True or False");
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> dims;
    expect('(');
    for (;;) {
      skip();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') fail("expected a non-negative integer in the shape");
      int64_t d = 0;
      while (peek() >= '0' && peek() <= '9') {
        const int digit = peek() - '0';
        if (d > (std::numeric_limits<int64_t>::max() - digit) / 10) fail("a dimension overflows int64");
        d = d * 10 + digit;
        ++i_;
      }
      if (peek() == 'L') ++i_;  // written by Python 2
      dims.push_back(d);
      skip();
      if (peek() == ',') {
        ++i_;
      } else if (peek() != ')') {
        fail("expected ',' or ')' in the shape");
      }
    }
    ++i_;
    return dims;
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw NpyError(path_ + ": malformed .npy header (" + why + " at character " + std::to_string(i_) + ")");
  }

  const std::string& s_;
  const std::string& path_;
  size_t i_ = 0;
};

}  // namespace detail

/// Reads a float32 or float64 .npy file.
inline Array read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw NpyError(path + ": cannot open file");
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw NpyError(path + ": not a .npy file (no \\x93NUMPY magic)");
  const auto major = static_cast<unsigned char>(magic[6]);
  if (major < 1 || major > 3)
    throw NpyError(path + ": .npy format version " + std::to_string(major) + " is not supported (1, 2 or 3)");
  unsigned char len_bytes[4] = {0, 0, 0, 0};
  const int len_size = major == 1 ? 2 : 4;
  if (!in.read(reinterpret_cast<char*>(len_bytes), len_size)) throw NpyError(path + ": truncated .npy header");
  uint64_t header_len = 0;
  for (int i = len_size - 1; i >= 0; --i) header_len = header_len << 8 | len_bytes[i];
  const uint64_t data_offset = 8 + static_cast<uint64_t>(len_size) + header_len;
  if (data_offset > file_size) throw NpyError(path + ": truncated .npy header");
  std::string header(static_cast<size_t>(header_len), '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));

  std::string descr;
  bool fortran = false;
  Array a;
  detail::HeaderParser(header, path).parse(descr, fortran, a.shape);
  size_t item = 0;
  if (descr == "<f4") {
    a.dtype = "float32";
    item = 4;
  } else if (descr == "<f8") {
    a.dtype = "float64";
    item = 8;
  } else {
    throw NpyError(path + ": dtype '" + descr + "' is not supported (little-endian float32 '<f4' or float64 '<f8'; " +
                   "convert with x.astype(np.float32))");
  }
  if (fortran) throw NpyError(path + ": Fortran-order arrays are not supported (save np.ascontiguousarray(x))");
  if (!detail::host_is_little_endian()) throw NpyError(path + ": this reader needs a little-endian host");
  uint64_t count = 1;
  for (const int64_t d : a.shape) {
    const auto ud = static_cast<uint64_t>(d);
    if (ud != 0 && count > (uint64_t{1} << 62) / item / ud) {
      throw NpyError(path + ": shape " + shape_repr(a.shape) + " is too large");
    }
    count *= ud;
  }
  if (file_size - data_offset != count * item) {
    throw NpyError(path + ": shape " + shape_repr(a.shape) + " of " + a.dtype + " needs " +
                   std::to_string(count * item) + " bytes of data, the file holds " +
                   std::to_string(file_size - data_offset));
  }
  char* dst = nullptr;
  if (item == 4) {
    a.f4.resize(static_cast<size_t>(count));
    dst = reinterpret_cast<char*>(a.f4.data());
  } else {
    a.f8.resize(static_cast<size_t>(count));
    dst = reinterpret_cast<char*>(a.f8.data());
  }
  if (!in.read(dst, static_cast<std::streamsize>(count * item))) throw NpyError(path + ": truncated data");
  return a;
}

/// Writes `count` elements of T (float or double) with `shape` as a version 1.0 .npy file (the header padded so that
/// the data start at a multiple of 64 bytes, as NumPy writes it).
template <class T>
void write(const std::string& path, const std::vector<int64_t>& shape, const T* data, size_t count) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "float or double");
  if (!detail::host_is_little_endian()) throw NpyError(path + ": this writer needs a little-endian host");
  std::string header = std::string("{'descr': '") + (sizeof(T) == 4 ? "<f4" : "<f8") +
                       "', 'fortran_order': False, 'shape': " + shape_repr(shape) + ", }";
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  if (header.size() > 65535) throw NpyError(path + ": shape too long for a version 1.0 header");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw NpyError(path + ": cannot create file");
  const char len[2] = {static_cast<char>(header.size() & 0xff), static_cast<char>(header.size() >> 8)};
  out.write("\x93NUMPY\x01\x00", 8);
  out.write(len, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * sizeof(T)));
  out.close();
  if (!out) throw NpyError(path + ": write failed");
}

}  // namespace npy
