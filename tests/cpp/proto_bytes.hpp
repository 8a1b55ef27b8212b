// Protobuf wire-format bytes written by hand, for the tests of the ONNX reader and importer: varints, tags,
// length-delimited and varint fields, fixed32 floats.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace dtd_test {

using Bytes = std::string;

inline Bytes varint(uint64_t v) {
  Bytes out;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    if (v) b |= 0x80;
    out += static_cast<char>(b);
  } while (v);
  return out;
}
inline Bytes tag(uint32_t field, uint32_t wire) {
  return varint((uint64_t{field} << 3) | wire);
}
/// A length-delimited field (wire type 2).
inline Bytes len(uint32_t field, const Bytes& payload) {
  return tag(field, 2) + varint(payload.size()) + payload;
}
/// A varint field (wire type 0); negative values as protobuf writes int64 (ten bytes).
inline Bytes vint(uint32_t field, uint64_t v) {
  return tag(field, 0) + varint(v);
}
/// A fixed32 float field (wire type 5).
inline Bytes fixed32(uint32_t field, float v) {
  Bytes b(4, '\0');
  std::memcpy(b.data(), &v, 4);
  return tag(field, 5) + b;
}

}  // namespace dtd_test
