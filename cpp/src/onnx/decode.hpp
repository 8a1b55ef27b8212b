// The ONNX reader's decoder entry point (private): the bytes of a ModelProto to a dtd::onnx::Model, external data
// left unresolved (read_model and read_model_file resolve it).
#pragma once

#include <cstddef>
#include <string>

#include "dtd/onnx.hpp"

namespace dtd::onnx {

/// Decodes `size` bytes at `data`; `source` names the input in error messages.
Model decode_model(const void* data, size_t size, const std::string& source);

}  // namespace dtd::onnx
