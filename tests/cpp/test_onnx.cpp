// The C++ ONNX reader on handwritten protobuf bytes: packed and unpacked repeated scalars, unknown fields of every
// wire type, and the malformed inputs it must refuse with a ModelLoadError (groups, long varints, lengths beyond
// the end, nesting bombs, overflowing dims, raw_data of the wrong size).
#include <cstring>
#include <string>
#include <vector>

#include "check.hpp"
#include "dtd/onnx.hpp"
#include "proto_bytes.hpp"

using dtd_test::check;
namespace ox = dtd::onnx;

namespace {

using dtd_test::Bytes;
using dtd_test::fixed32;
using dtd_test::len;
using dtd_test::tag;
using dtd_test::varint;
using dtd_test::vint;

// ModelProto.graph = 7, GraphProto.node = 1, .initializer = 5, NodeProto.attribute = 5, AttributeProto.ints = 8,
// .g = 6, .t = 5, TensorProto.dims = 1, .data_type = 2, .float_data = 4, .name = 8, .raw_data = 9.
Bytes model_with_graph(const Bytes& graph) {
  return vint(1, 8) + len(7, graph);
}
Bytes graph_with_attribute(const Bytes& attribute) {
  return len(1, len(4, "Conv") + len(5, attribute));
}

ox::Model read(const Bytes& b) {
  return ox::read_model(b.data(), b.size());
}

bool refused(const Bytes& b, const std::string& needle) {
  try {
    read(b);
  } catch (const dtd::ModelLoadError& e) {
    const bool ok = std::string(e.what()).find(needle) != std::string::npos;
    if (!ok) std::printf("  message: %s\n", e.what());
    return ok;
  }
  return false;
}

void test_packed_and_unpacked() {
  const Bytes attr_name = len(1, "pads") + vint(20, 7);
  Bytes packed_payload = varint(1) + varint(2) + varint(static_cast<uint64_t>(-3));
  const Bytes packed = graph_with_attribute(attr_name + len(8, packed_payload));
  const Bytes unpacked = graph_with_attribute(attr_name + vint(8, 1) + vint(8, 2) + vint(8, static_cast<uint64_t>(-3)));
  const Bytes mixed =
      graph_with_attribute(attr_name + vint(8, 1) + len(8, varint(2) + varint(static_cast<uint64_t>(-3))));
  for (const Bytes* g : {&packed, &unpacked, &mixed}) {
    const ox::Model m = read(model_with_graph(*g));
    check(m.ir_version == 8, "ir_version");
    const ox::Attribute& a = m.graph->node.at(0).attribute.at(0);
    check(a.name == "pads" && a.type == ox::Attribute::kInts, "attribute name and type");
    check(a.ints == std::vector<int64_t>({1, 2, -3}), "ints packed/unpacked/mixed");
  }
  // float_data packed and unpacked, dims unpacked
  Bytes floats(8, '\0');
  const float fv[2] = {1.5f, -2.0f};
  std::memcpy(floats.data(), fv, 8);
  const Bytes t1 = vint(1, 2) + vint(2, 1) + len(4, floats) + len(8, "w");
  const Bytes t2 = len(1, varint(2)) + vint(2, 1) + fixed32(4, 1.5f) + fixed32(4, -2.0f) + len(8, "w");
  for (const Bytes* t : {&t1, &t2}) {
    const ox::Model m = read(model_with_graph(len(5, *t)));
    const ox::Tensor& w = m.graph->initializer.at(0);
    check(w.name == "w" && w.dims == std::vector<int64_t>({2}), "tensor dims");
    check(w.float_data == std::vector<float>({1.5f, -2.0f}), "float_data packed/unpacked");
  }
}

void test_unknown_fields_skipped() {
  Bytes unknown = vint(1000, 5) + tag(1001, 1) + Bytes(8, 'x') + len(1002, "skip me") + tag(1003, 5) + Bytes(4, 'y');
  const ox::Model m = read(unknown + model_with_graph(len(2, "g") + unknown) + unknown);
  check(m.graph && m.graph->name == "g", "unknown fields of every wire type are skipped");
}

void test_unaligned_raw_data() {
  // raw_data at an odd offset in the input: the decoder copies it, never reinterprets the input in place
  const float values[3] = {1.0f, 2.0f, 3.0f};
  Bytes raw(12, '\0');
  std::memcpy(raw.data(), values, 12);
  const Bytes t = vint(1, 3) + vint(2, 1) + len(8, "abc") + len(9, raw);
  const Bytes m = model_with_graph(len(5, t));
  for (size_t shift = 0; shift < 4; ++shift) {
    std::vector<char> buf(m.size() + shift);
    std::memcpy(buf.data() + shift, m.data(), m.size());
    const ox::Model r = ox::read_model(buf.data() + shift, m.size());
    const ox::Tensor& w = r.graph->initializer.at(0);
    float got[3];
    check(w.has_raw_data && w.raw_data.size() == 12, "raw_data size");
    std::memcpy(got, w.raw_data.data(), 12);
    check(got[0] == 1.0f && got[2] == 3.0f, "raw_data values at any alignment");
  }
}

void test_malformed() {
  check(refused(model_with_graph(len(2, "g")) + tag(50, 3), "groups"), "start group refused");
  check(refused(tag(50, 4), "groups"), "end group refused");
  check(refused(tag(50, 6), "invalid wire type"), "wire type 6 refused");
  check(refused(tag(1, 0) + Bytes(10, '\x80') + Bytes(1, '\x01'), "longer than 10 bytes"), "11-byte varint refused");
  check(refused(tag(1, 0) + Bytes(3, '\x80'), "truncated varint"), "truncated varint refused");
  check(refused(tag(7, 2) + varint(100) + "abc", "exceeds the 3 bytes left"), "length beyond the end refused");
  check(refused(tag(7, 2) + varint(uint64_t{1} << 62), "exceeds"), "huge length refused");
  check(refused(tag(7, 0) + varint(1), "wire type 0"), "message field with a varint refused");
  check(refused(model_with_graph(len(5, vint(1, uint64_t{1} << 40) + vint(1, uint64_t{1} << 40) + vint(2, 1))),
                "does not fit in int64"),
        "overflowing dims refused");
  check(refused(model_with_graph(len(5, vint(1, static_cast<uint64_t>(-1)) + vint(2, 1))), "negative dimension"),
        "negative dims refused");
  check(refused(model_with_graph(len(5, vint(1, 4) + vint(2, 1) + len(9, Bytes(15, '\0')))), "holds 15 bytes"),
        "raw_data size mismatch refused");
  check(
      refused(model_with_graph(len(5, vint(1, 2) + vint(2, 1) + len(7, varint(1) + varint(2)))), "expected float_data"),
      "data in the wrong field refused");
  check(refused(model_with_graph(len(5, vint(1, 2) + vint(2, 1))), "holds no data"), "missing data refused");
  check(refused(model_with_graph(len(15, "")), "sparse"), "sparse initializer refused");
  check(refused(model_with_graph(len(5, len(3, ""))), "segment"), "segment refused");
  check(refused(tag(0, 0) + varint(1), "field number 0"), "field number 0 refused");
  // nesting bomb: graphs inside attributes inside nodes, deeper than the limit
  Bytes g = len(2, "leaf");
  for (int depth = 0; depth < ox::kMaxGraphDepth + 1; ++depth)
    g = len(1, len(4, "If") + len(5, len(1, "then_branch") + vint(20, 5) + len(6, g)));
  check(refused(model_with_graph(g), "nest deeper than"), "graph nesting bomb refused");
  // the message names the message type, the field and the byte offset
  try {
    read(model_with_graph(len(5, vint(1, 2) + vint(2, 1) + len(8, "w") + len(4, Bytes(7, '\0')))));
    check(false, "float_data of 7 bytes refused");
  } catch (const dtd::ModelLoadError& e) {
    const std::string msg = e.what();
    check(msg.find("TensorProto.float_data (field 4)") != std::string::npos, "message names the field: " + msg);
    check(msg.find("at byte ") != std::string::npos, "message names the offset: " + msg);
    check(msg.find("ModelProto.graph.initializer[0]") != std::string::npos, "message names the path: " + msg);
  }
}

// Found by the reader's fuzz campaign (tools/fuzz.py --target reader).
void test_fuzz_regressions() {
  // an external tensor that also holds data: read_model would fill raw_data as well (two data fields)
  const Bytes ext = len(13, len(1, "location") + len(2, "w.bin")) + vint(14, 1);
  check(refused(model_with_graph(len(5, vint(1, 2) + vint(2, 1) + len(8, "w") + len(4, Bytes(8, '\0')) + ext)),
                "external file and also holds float_data"),
        "external tensor with float_data refused");
  // base_dir "": std::filesystem::absolute threw filesystem_error instead of a ModelLoadError
  const Bytes m = model_with_graph(len(5, vint(1, 2) + vint(2, 1) + len(8, "w") + ext));
  try {
    ox::read_model(m.data(), m.size(), std::string());
    check(false, "base_dir \"\" refused");
  } catch (const dtd::ModelLoadError& e) {
    check(std::string(e.what()).find("cannot be resolved") != std::string::npos, e.what());
  }
}

void test_nesting_within_limit() {
  Bytes g = len(2, "leaf");
  for (int depth = 0; depth < ox::kMaxGraphDepth - 1; ++depth)
    g = len(1, len(4, "If") + len(5, len(1, "then_branch") + vint(20, 5) + len(6, g)));
  const ox::Model m = read(model_with_graph(g));
  const ox::Graph* cur = &*m.graph;
  int depth = 1;
  while (!cur->node.empty()) cur = cur->node[0].attribute.at(0).g.get(), ++depth;
  check(depth == ox::kMaxGraphDepth && cur->name == "leaf", "graphs nested to the limit decode");
}

void test_field_table() {
  bool dims = false;
  for (const ox::FieldInfo& f : ox::field_table())
    dims |= std::string(f.message) == "TensorProto" && std::string(f.field) == "dims" && f.number == 1 && f.repeated;
  check(dims, "field table holds TensorProto.dims");
}

}  // namespace

int main() {
  test_packed_and_unpacked();
  test_unknown_fields_skipped();
  test_unaligned_raw_data();
  test_malformed();
  test_nesting_within_limit();
  test_fuzz_regressions();
  test_field_table();
  if (dtd_test::failures) {
    std::printf("%d failure(s)\n", dtd_test::failures);
    return 1;
  }
  std::printf("onnx reader: all passed\n");
  return 0;
}
