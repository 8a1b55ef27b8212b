// libFuzzer target of the C++ ONNX importer (issue 11; built with DTD_FUZZ=ON by Clang, run by tools/libfuzz.sh):
// the reader, the graph checks, constant folding and every converter. Every input must end in a dtd::ModelLoadError
// (UnsupportedModelError included) or a ModelSpec whose layers name their inputs and outputs; any other exception
// escapes (std::terminate: libFuzzer reports it), and a broken promise traps. Allocations beyond libFuzzer's
// -malloc_limit_mb are reported too: the importer must check every size it reads before allocating. External data
// is resolved against a private folder holding one 4 KiB file, weights.bin (made by LLVMFuzzerInitialize).
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <set>
#include <string>

#include "dtd/import.hpp"

namespace {

std::optional<std::string> g_base_dir;

/// Each layer reads values defined before it (the input or an earlier layer's output), and the spec's output is
/// one of them: the importer's topological order and naming.
void check_spec(const dtd::ModelSpec& spec) {
  std::set<std::string> defined{spec.input_name};
  for (const dtd::LayerSpec& layer : spec.layers) {
    for (const std::string& in : layer.inputs)
      if (!defined.count(in)) __builtin_trap();
    if (layer.output.empty() || defined.count(layer.output)) __builtin_trap();
    defined.insert(layer.output);
  }
  if (!spec.layers.empty() && !defined.count(spec.output)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char folder[] = "/tmp/dtd-libfuzz-import-XXXXXX";
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
  dtd::ImportLimits limits;
  limits.max_folded_constant = int64_t{1} << 20;  // the defaults allow 512 MiB of folded constants per node
  limits.max_activation = int64_t{1} << 22;
  limits.max_total_activation = int64_t{1} << 24;
  try {
    const dtd::ImportedModel m = dtd::import_onnx(data, size, g_base_dir, limits);
    check_spec(m.spec);
  } catch (const dtd::ModelLoadError&) {
  }
  return 0;
}
