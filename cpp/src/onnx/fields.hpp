// The field table of the ONNX reader (private): every field of the messages it decodes, with the number and type
// onnx.proto gives it and what the reader does with it. The decoder's switch statements take their case labels from
// here (num(F::...)), and tests/test_onnx_reader.py pins the table against onnx's own descriptors, so a field number
// is written in one place only.
#pragma once

#include <cstdint>

// X(message identifier, message name, field, number, type, repeated, action)
// type: int64 | int32 | uint64 | float | double | string | bytes | enum <Name> | message <Name>
// action: decode | kind (only which member of the oneof is set) | skip (known, ignored) | refuse (an error)
#define DTD_ONNX_FIELDS(X)                                                                                   \
  X(ModelProto, "ModelProto", ir_version, 1, "int64", false, "decode")                                       \
  X(ModelProto, "ModelProto", opset_import, 8, "message OperatorSetIdProto", true, "decode")                 \
  X(ModelProto, "ModelProto", producer_name, 2, "string", false, "decode")                                   \
  X(ModelProto, "ModelProto", producer_version, 3, "string", false, "decode")                                \
  X(ModelProto, "ModelProto", domain, 4, "string", false, "decode")                                          \
  X(ModelProto, "ModelProto", model_version, 5, "int64", false, "decode")                                    \
  X(ModelProto, "ModelProto", doc_string, 6, "string", false, "decode")                                      \
  X(ModelProto, "ModelProto", graph, 7, "message GraphProto", false, "decode")                               \
  X(ModelProto, "ModelProto", metadata_props, 14, "message StringStringEntryProto", true, "decode")          \
  X(ModelProto, "ModelProto", training_info, 20, "message TrainingInfoProto", true, "skip")                  \
  X(ModelProto, "ModelProto", functions, 25, "message FunctionProto", true, "skip")                          \
  X(ModelProto, "ModelProto", configuration, 26, "message DeviceConfigurationProto", true, "skip")           \
  X(GraphProto, "GraphProto", node, 1, "message NodeProto", true, "decode")                                  \
  X(GraphProto, "GraphProto", name, 2, "string", false, "decode")                                            \
  X(GraphProto, "GraphProto", initializer, 5, "message TensorProto", true, "decode")                         \
  X(GraphProto, "GraphProto", sparse_initializer, 15, "message SparseTensorProto", true, "refuse")           \
  X(GraphProto, "GraphProto", doc_string, 10, "string", false, "decode")                                     \
  X(GraphProto, "GraphProto", input, 11, "message ValueInfoProto", true, "decode")                           \
  X(GraphProto, "GraphProto", output, 12, "message ValueInfoProto", true, "decode")                          \
  X(GraphProto, "GraphProto", value_info, 13, "message ValueInfoProto", true, "decode")                      \
  X(GraphProto, "GraphProto", quantization_annotation, 14, "message TensorAnnotation", true, "skip")         \
  X(GraphProto, "GraphProto", metadata_props, 16, "message StringStringEntryProto", true, "decode")          \
  X(NodeProto, "NodeProto", input, 1, "string", true, "decode")                                              \
  X(NodeProto, "NodeProto", output, 2, "string", true, "decode")                                             \
  X(NodeProto, "NodeProto", name, 3, "string", false, "decode")                                              \
  X(NodeProto, "NodeProto", op_type, 4, "string", false, "decode")                                           \
  X(NodeProto, "NodeProto", domain, 7, "string", false, "decode")                                            \
  X(NodeProto, "NodeProto", overload, 8, "string", false, "decode")                                          \
  X(NodeProto, "NodeProto", attribute, 5, "message AttributeProto", true, "decode")                          \
  X(NodeProto, "NodeProto", doc_string, 6, "string", false, "decode")                                        \
  X(NodeProto, "NodeProto", metadata_props, 9, "message StringStringEntryProto", true, "decode")             \
  X(NodeProto, "NodeProto", device_configurations, 10, "message NodeDeviceConfigurationProto", true, "skip") \
  X(AttributeProto, "AttributeProto", name, 1, "string", false, "decode")                                    \
  X(AttributeProto, "AttributeProto", ref_attr_name, 21, "string", false, "decode")                          \
  X(AttributeProto, "AttributeProto", doc_string, 13, "string", false, "decode")                             \
  X(AttributeProto, "AttributeProto", type, 20, "enum AttributeType", false, "decode")                       \
  X(AttributeProto, "AttributeProto", f, 2, "float", false, "decode")                                        \
  X(AttributeProto, "AttributeProto", i, 3, "int64", false, "decode")                                        \
  X(AttributeProto, "AttributeProto", s, 4, "bytes", false, "decode")                                        \
  X(AttributeProto, "AttributeProto", t, 5, "message TensorProto", false, "decode")                          \
  X(AttributeProto, "AttributeProto", g, 6, "message GraphProto", false, "decode")                           \
  X(AttributeProto, "AttributeProto", sparse_tensor, 22, "message SparseTensorProto", false, "refuse")       \
  X(AttributeProto, "AttributeProto", tp, 14, "message TypeProto", false, "decode")                          \
  X(AttributeProto, "AttributeProto", floats, 7, "float", true, "decode")                                    \
  X(AttributeProto, "AttributeProto", ints, 8, "int64", true, "decode")                                      \
  X(AttributeProto, "AttributeProto", strings, 9, "bytes", true, "decode")                                   \
  X(AttributeProto, "AttributeProto", tensors, 10, "message TensorProto", true, "decode")                    \
  X(AttributeProto, "AttributeProto", graphs, 11, "message GraphProto", true, "decode")                      \
  X(AttributeProto, "AttributeProto", sparse_tensors, 23, "message SparseTensorProto", true, "refuse")       \
  X(AttributeProto, "AttributeProto", type_protos, 15, "message TypeProto", true, "decode")                  \
  X(ValueInfoProto, "ValueInfoProto", name, 1, "string", false, "decode")                                    \
  X(ValueInfoProto, "ValueInfoProto", type, 2, "message TypeProto", false, "decode")                         \
  X(ValueInfoProto, "ValueInfoProto", doc_string, 3, "string", false, "decode")                              \
  X(ValueInfoProto, "ValueInfoProto", metadata_props, 4, "message StringStringEntryProto", true, "decode")   \
  X(TensorProto, "TensorProto", dims, 1, "int64", true, "decode")                                            \
  X(TensorProto, "TensorProto", data_type, 2, "int32", false, "decode")                                      \
  X(TensorProto, "TensorProto", segment, 3, "message Segment", false, "refuse")                              \
  X(TensorProto, "TensorProto", float_data, 4, "float", true, "decode")                                      \
  X(TensorProto, "TensorProto", int32_data, 5, "int32", true, "decode")                                      \
  X(TensorProto, "TensorProto", string_data, 6, "bytes", true, "decode")                                     \
  X(TensorProto, "TensorProto", int64_data, 7, "int64", true, "decode")                                      \
  X(TensorProto, "TensorProto", name, 8, "string", false, "decode")                                          \
  X(TensorProto, "TensorProto", doc_string, 12, "string", false, "decode")                                   \
  X(TensorProto, "TensorProto", raw_data, 9, "bytes", false, "decode")                                       \
  X(TensorProto, "TensorProto", external_data, 13, "message StringStringEntryProto", true, "decode")         \
  X(TensorProto, "TensorProto", data_location, 14, "enum DataLocation", false, "decode")                     \
  X(TensorProto, "TensorProto", double_data, 10, "double", true, "decode")                                   \
  X(TensorProto, "TensorProto", uint64_data, 11, "uint64", true, "decode")                                   \
  X(TensorProto, "TensorProto", metadata_props, 16, "message StringStringEntryProto", true, "decode")        \
  X(TypeProto, "TypeProto", tensor_type, 1, "message Tensor", false, "decode")                               \
  X(TypeProto, "TypeProto", sequence_type, 4, "message Sequence", false, "kind")                             \
  X(TypeProto, "TypeProto", map_type, 5, "message Map", false, "kind")                                       \
  X(TypeProto, "TypeProto", optional_type, 9, "message Optional", false, "kind")                             \
  X(TypeProto, "TypeProto", sparse_tensor_type, 8, "message SparseTensor", false, "kind")                    \
  X(TypeProto, "TypeProto", opaque_type, 7, "message Opaque", false, "kind")                                 \
  X(TypeProto, "TypeProto", denotation, 6, "string", false, "decode")                                        \
  X(TypeProto_Tensor, "TypeProto.Tensor", elem_type, 1, "int32", false, "decode")                            \
  X(TypeProto_Tensor, "TypeProto.Tensor", shape, 2, "message TensorShapeProto", false, "decode")             \
  X(TensorShapeProto, "TensorShapeProto", dim, 1, "message Dimension", true, "decode")                       \
  X(Dimension, "TensorShapeProto.Dimension", dim_value, 1, "int64", false, "decode")                         \
  X(Dimension, "TensorShapeProto.Dimension", dim_param, 2, "string", false, "decode")                        \
  X(Dimension, "TensorShapeProto.Dimension", denotation, 3, "string", false, "decode")                       \
  X(OperatorSetIdProto, "OperatorSetIdProto", domain, 1, "string", false, "decode")                          \
  X(OperatorSetIdProto, "OperatorSetIdProto", version, 2, "int64", false, "decode")                          \
  X(StringStringEntryProto, "StringStringEntryProto", key, 1, "string", false, "decode")                     \
  X(StringStringEntryProto, "StringStringEntryProto", value, 2, "string", false, "decode")

namespace dtd::onnx::fields {

/// One identifier per field: F::TensorProto_dims, ...
enum class F : uint16_t {
#define DTD_ONNX_FIELD_ID(M, MN, NAME, NUM, TYPE, REP, ACT) M##_##NAME,
  DTD_ONNX_FIELDS(DTD_ONNX_FIELD_ID)
#undef DTD_ONNX_FIELD_ID
      unknown
};

struct FieldRow {
  const char* message;
  const char* field;
  uint32_t number;
  const char* type;
  bool repeated;
  const char* action;
};

inline constexpr FieldRow kFieldRows[] = {
#define DTD_ONNX_FIELD_ROW(M, MN, NAME, NUM, TYPE, REP, ACT) {MN, #NAME, NUM, TYPE, REP, ACT},
    DTD_ONNX_FIELDS(DTD_ONNX_FIELD_ROW)
#undef DTD_ONNX_FIELD_ROW
};

/// The field number of `f` (a constant expression: usable as a case label).
constexpr uint32_t num(F f) {
  return kFieldRows[static_cast<int>(f)].number;
}

}  // namespace dtd::onnx::fields
