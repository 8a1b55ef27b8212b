// External tensor data, read safely (the rules and the message wording are fixed: tests check them), and the
// reader's entry points read_model / read_model_file.
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "dtd/onnx.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define DTD_ONNX_MMAP 1
#endif

namespace fs = std::filesystem;

namespace dtd::onnx {
namespace {

void collect(Graph& g, std::vector<Tensor*>& out) {
  for (Tensor& t : g.initializer)
    if (t.data_location == Tensor::kExternal) out.push_back(&t);
  for (Node& n : g.node) {
    for (Attribute& a : n.attribute) {
      if (a.t && a.t->data_location == Tensor::kExternal) out.push_back(&*a.t);
      for (Tensor& t : a.tensors)
        if (t.data_location == Tensor::kExternal) out.push_back(&t);
      if (a.g) collect(*a.g, out);
      for (Graph& sub : a.graphs) collect(sub, out);
    }
  }
}

/// Python's repr of a str (the messages quote locations this way; the wording is fixed, tests check it).
std::string repr(const std::string& s) {
  const char quote = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == '\\' || c == static_cast<unsigned char>(quote)) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += quote;
  return out;
}

bool valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned c = *p;
    int n = 0;
    unsigned cp = 0;
    if (c < 0x80) {
      ++p;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= n) return false;
    for (int k = 1; k <= n; ++k) {
      if ((p[k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    p += n + 1;
  }
  return true;
}

/// A decimal integer with optional surrounding blanks and sign, as Python's int() reads one (without underscores).
bool parse_int(const std::string& text, int64_t& out) {
  size_t i = 0, n = text.size();
  while (i < n && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  while (n > i && std::isspace(static_cast<unsigned char>(text[n - 1]))) --n;
  bool negative = false;
  if (i < n && (text[i] == '+' || text[i] == '-')) negative = text[i++] == '-';
  if (i == n) return false;
  int64_t v = 0;
  for (; i < n; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    const int digit = text[i] - '0';
    if (__builtin_mul_overflow(v, int64_t{10}, &v) || __builtin_sub_overflow(v, int64_t{digit}, &v)) return false;
  }
  if (!negative && __builtin_mul_overflow(v, int64_t{-1}, &v)) return false;
  out = v;
  return true;
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += detail::concat(i ? ", " : "", dims[i]);
  return s + "]";
}

/// True when `path` lies inside `base` (both canonical): base's components are a prefix of path's.
bool inside(const fs::path& path, const fs::path& base) {
  auto p = path.begin();
  for (auto b = base.begin(); b != base.end(); ++b, ++p) {
    if (b->empty() && std::next(b) == base.end()) break;  // a trailing separator
    if (p == path.end() || *p != *b) return false;
  }
  return true;
}

fs::path checked_location(const Tensor& t, const std::string& location, const fs::path& base) {
  const std::string what = detail::concat("initializer '", t.name, "': external data location ", repr(location));
  if (location.empty() || location.find('\0') != std::string::npos)
    throw ModelLoadError(what + " is empty or holds a NUL character");
  // Relative in POSIX and Windows terms alike: no root, no drive ("C:"), no '..' between '/' or '\' separators.
  bool unsafe = location[0] == '/' || location[0] == '\\' || (location.size() >= 2 && location[1] == ':');
  size_t start = 0;
  while (!unsafe && start <= location.size()) {
    const size_t stop = location.find_first_of("/\\", start);
    const size_t end = stop == std::string::npos ? location.size() : stop;
    unsafe = location.compare(start, end - start, "..") == 0;
    start = end + 1;
  }
  if (unsafe) throw ModelLoadError(what + " must be a relative path inside the model's folder, without '..'");
  std::error_code ec;
  const fs::path full = fs::weakly_canonical(base / fs::path(location), ec);
  if (ec) throw ModelLoadError(detail::concat(what, ": cannot be resolved (", ec.message(), ")"));
  if (!inside(full, base))
    throw ModelLoadError(detail::concat(what, " resolves to ", repr(full.string()), ", outside the model's folder ",
                                        repr(base.string())));
  if (!fs::is_regular_file(full, ec))
    throw ModelLoadError(detail::concat(what, ": no such file in ", repr(base.string())));
  return full;
}

/// Where one external tensor's bytes lie, checked (load_external_data reads them once every tensor is checked).
struct Extent {
  Tensor* tensor;
  fs::path path;
  int64_t offset;
  int64_t length;
  int64_t file_size;
};

Extent check_one(Tensor& t, const fs::path& base) {
  std::map<std::string, std::string> info;  // the last entry of a key wins, as in a Python dict
  for (const StringStringEntry& e : t.external_data) {
    if (!valid_utf8(e.key) || !valid_utf8(e.value))
      throw ModelLoadError(
          detail::concat("initializer '", t.name, "': its external data description is not valid UTF-8 text"));
    info[e.key] = e.value;
  }
  const auto get = [&](const char* key, const std::string& fallback) {
    auto it = info.find(key);
    return it == info.end() ? fallback : it->second;
  };
  const fs::path path = checked_location(t, get("location", ""), base);
  const int itemsize = element_size(t.data_type);
  if (itemsize == 0)
    throw ModelLoadError(detail::concat("initializer '", t.name, "': external data of element type ",
                                        data_type_name(t.data_type), " is not supported"));
  int64_t numel = 1;
  for (int64_t d : t.dims) {
    if (d < 0)
      throw ModelLoadError(
          detail::concat("initializer '", t.name, "' has dims ", dims_text(t.dims), " with a negative entry"));
    if (__builtin_mul_overflow(numel, d, &numel))
      throw ModelLoadError(detail::concat("initializer '", t.name, "': the element count of ", dims_text(t.dims),
                                          " does not fit in a 64-bit integer"));
  }
  const int64_t pack = elements_per_byte(t.data_type);
  int64_t expected = 0;
  if (pack > 1) {
    expected = numel / pack + (numel % pack != 0);  // several elements per byte
  } else if (__builtin_mul_overflow(numel, int64_t{itemsize}, &expected)) {
    throw ModelLoadError(detail::concat("initializer '", t.name, "': the byte size of ", dims_text(t.dims),
                                        " does not fit in a 64-bit integer"));
  }
  int64_t offset = 0, length = expected;
  if (!parse_int(get("offset", "0"), offset) || !parse_int(get("length", std::to_string(expected)), length))
    throw ModelLoadError(detail::concat("initializer '", t.name,
                                        "': external data offset/length is not an integer (or not a 64-bit one)"));
  std::error_code ec;
  const uintmax_t file_size = fs::file_size(path, ec);
  if (ec) throw ModelLoadError(detail::concat("initializer '", t.name, "': cannot read ", repr(path.string())));
  const auto size = static_cast<int64_t>(file_size);
  if (length != expected)
    throw ModelLoadError(detail::concat("initializer '", t.name, "': external data length ", length, " != ", expected,
                                        " bytes (", dims_text(t.dims), " elements of ", itemsize, " bytes)"));
  int64_t stop = 0;
  const bool overflow = __builtin_add_overflow(offset, length, &stop);
  if (offset < 0 || overflow || stop > size) {
    const std::string end = overflow ? detail::concat(offset, " + ", length) : std::to_string(stop);
    throw ModelLoadError(detail::concat("initializer '", t.name, "': external data [", offset, ", ", end,
                                        ") lies outside ", path.filename().string(), " (", size, " bytes)"));
  }
  return {&t, path, offset, length, size};
}

void read_one(const Extent& e) {
  Tensor& t = *e.tensor;
  std::ifstream in(e.path, std::ios::binary);
  std::string data(static_cast<size_t>(e.length), '\0');
  if (!in.seekg(e.offset) || !in.read(data.data(), e.length))
    throw ModelLoadError(detail::concat("initializer '", t.name, "': cannot read ", e.length, " bytes at ", e.offset,
                                        " of ", repr(e.path.string())));
  t.raw_data = std::move(data);
  t.has_raw_data = true;
  t.data_location = Tensor::kDefault;
  t.external_data.clear();
}

}  // namespace

void load_external_data(Model& model, const std::optional<std::string>& base_dir, const std::string& source) {
  if (!model.graph) return;
  std::vector<Tensor*> tensors;
  collect(*model.graph, tensors);
  if (tensors.empty()) return;
  if (!base_dir)
    throw ModelLoadError(detail::concat(source, ": initializer '", tensors[0]->name,
                                        "' keeps its data in an external file; a model given as ", source,
                                        " needs base_dir= (the folder holding that file): dtd never resolves it "
                                        "against the working directory"));
  std::error_code ec;
  fs::path base;
  if (!base_dir->empty()) base = fs::absolute(fs::path(*base_dir), ec);  // the throwing overload throws for ""
  if (!ec && !base.empty()) base = fs::weakly_canonical(base, ec);
  if (ec || base.empty())
    throw ModelLoadError(detail::concat(source, ": base_dir ", repr(*base_dir), " cannot be resolved"));
  std::vector<Extent> extents;
  extents.reserve(tensors.size());
  for (Tensor* t : tensors) extents.push_back(check_one(*t, base));
  // Each byte of a file is read at most once in all: tensors whose ranges overlap could otherwise make a small model
  // ask for many times the bytes on disk (a thousand initializers naming the same 4 MiB). Checked before any read.
  std::map<fs::path, int64_t> taken;
  for (const Extent& e : extents) {
    int64_t& sum = taken[e.path];
    if (__builtin_add_overflow(sum, e.length, &sum) || sum > e.file_size)
      throw ModelLoadError(detail::concat(source, ": initializer '", e.tensor->name, "': the external tensors in ",
                                          e.path.filename().string(), " take more than its ", e.file_size,
                                          " bytes in all (ranges that overlap)"));
  }
  for (const Extent& e : extents) read_one(e);
}

Model read_model(const void* data, size_t size, const std::optional<std::string>& base_dir, const std::string& source) {
  Model model = decode_model(data, size, source);
  load_external_data(model, base_dir, source);
  return model;
}

Model read_model_file(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) parent = ".";
  Model model;
#ifdef DTD_ONNX_MMAP
  // O_NONBLOCK: opening a FIFO (or a device) waits for a writer otherwise; fstat below refuses anything irregular.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw ModelLoadError(detail::concat(repr(path), ": cannot open the file"));
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw ModelLoadError(detail::concat(repr(path), ": not a regular file"));
  }
  const auto size = static_cast<size_t>(st.st_size);
  void* map = size ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  ::close(fd);
  if (size && map == MAP_FAILED) throw ModelLoadError(detail::concat(repr(path), ": cannot map the file"));
  try {
    model = decode_model(map, size, path);
  } catch (...) {
    if (map) ::munmap(map, size);
    throw;
  }
  if (map) ::munmap(map, size);
#else
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw ModelLoadError(detail::concat(repr(path), ": cannot open the file"));
  std::string bytes(static_cast<size_t>(in.tellg()), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())))
    throw ModelLoadError(detail::concat(repr(path), ": cannot read the file"));
  model = decode_model(bytes.data(), bytes.size(), path);
#endif
  load_external_data(model, parent.string(), path);
  return model;
}

}  // namespace dtd::onnx
