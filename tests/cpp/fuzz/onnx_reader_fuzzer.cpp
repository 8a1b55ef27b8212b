// libFuzzer target of the C++ ONNX reader (issue 11; built with DTD_FUZZ=ON by Clang, run by tools/libfuzz.sh).
// Every input must end in a dtd::ModelLoadError or a model that keeps the reader's promises (dtd/onnx.hpp): any other
// exception escapes (std::terminate: libFuzzer reports it), and a broken promise traps. External data is resolved
// against a private folder holding one 4 KiB file, weights.bin, so that locations, offsets and lengths are checked
// for real; the folder is made once, by LLVMFuzzerInitialize.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "dtd/onnx.hpp"

namespace ox = dtd::onnx;

namespace {

std::optional<std::string> g_base_dir;

/// A tensor holds its data in at most one field, none left external (read_model reads external data).
void check_tensor(const ox::Tensor& t) {
  const int held = t.has_raw_data + !t.float_data.empty() + !t.int32_data.empty() + !t.string_data.empty() +
                   !t.int64_data.empty() + !t.double_data.empty() + !t.uint64_data.empty();
  if (held > 1 || t.data_location != ox::Tensor::kDefault || !t.external_data.empty()) __builtin_trap();
  for (int64_t d : t.dims)
    if (d < 0) __builtin_trap();
}

void check_graph(const ox::Graph& g) {
  for (const ox::Tensor& t : g.initializer) check_tensor(t);
  for (const ox::Node& n : g.node) {
    for (const ox::Attribute& a : n.attribute) {
      if (a.t) check_tensor(*a.t);
      for (const ox::Tensor& t : a.tensors) check_tensor(t);
      if (a.g) check_graph(*a.g);
      for (const ox::Graph& sub : a.graphs) check_graph(sub);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char folder[] = "/tmp/dtd-libfuzz-XXXXXX";
  if (!::mkdtemp(folder)) return 0;
  g_base_dir = folder;
  const std::string file = *g_base_dir + "/weights.bin";
  if (FILE* f = std::fopen(file.c_str(), "wb")) {
    for (int i = 0; i < 4096; ++i) std::fputc(i & 0xff, f);
    std::fclose(f);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const ox::Model m = ox::read_model(data, size, g_base_dir, "fuzz input");
    if (m.graph) check_graph(*m.graph);
  } catch (const dtd::ModelLoadError&) {
  }
  try {
    (void)ox::decode_model(data, size, "fuzz input");  // external data left as described
  } catch (const dtd::ModelLoadError&) {
  }
  return 0;
}
