// An ONNX model reader without protobuf: a bounded decoder of the protobuf wire format for the messages dtd reads,
// into plain structs (std::vector, std::string, int64). Field numbers and types follow onnx.proto (IR version 11);
// the one table of them is cpp/src/onnx/fields.hpp. Every error is a dtd::ModelLoadError whose message names the
// message type, the field and the byte offset.
//
// What is decoded: ModelProto (ir_version, opset_import, producer, domain, model_version, doc_string, graph,
// metadata_props), GraphProto, NodeProto, AttributeProto (nested graphs, tensors, type protos), TensorProto,
// ValueInfoProto, TypeProto (tensor types in full; the other kinds by kind only), TensorShapeProto, OperatorSetIdProto,
// StringStringEntryProto. Skipped: training_info, functions, quantization annotations, device configurations, and
// every field the reader does not know. Refused (an error): groups, sparse tensors, TensorProto.segment.
//
// Limits: graphs nest at most kMaxGraphDepth deep; the decoded structures take at most kAllocationFactor bytes per
// input byte (plus 64 MiB): a file of empty messages cannot ask for gigabytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dtd/error.hpp"

namespace dtd::onnx {

/// Nested graphs (attributes of type GRAPH/GRAPHS) deeper than this are an error.
constexpr int kMaxGraphDepth = 64;
/// Bytes of decoded structures (not counting tensor data, which is bounded by its own bytes) per input byte.
constexpr int64_t kAllocationFactor = 64;

/// TensorProto.DataType values (onnx.proto).
enum DataType : int32_t {
  kUndefined = 0,
  kFloat = 1,
  kUint8 = 2,
  kInt8 = 3,
  kUint16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kDouble = 11,
  kUint32 = 12,
  kUint64 = 13,
  kComplex64 = 14,
  kComplex128 = 15,
  kBfloat16 = 16,
  kFloat8E4M3FN = 17,
  kFloat8E4M3FNUZ = 18,
  kFloat8E5M2 = 19,
  kFloat8E5M2FNUZ = 20,
  kUint4 = 21,
  kInt4 = 22,
  kFloat4E2M1 = 23,
  kFloat8E8M0 = 24,
  kUint2 = 25,
  kInt2 = 26,
  kFloat6E2M3 = 27,
  kFloat6E3M2 = 28,
};

/// Bytes per element in raw_data (the 4-bit and 2-bit types: 1, though two or four elements share a byte); 0 for
/// STRING, the 6-bit types and unknown types (no raw_data layout).
int element_size(int32_t data_type);
/// Elements per byte of raw_data and per int32_data entry: 2 for the 4-bit types, 4 for the 2-bit ones, else 1.
int elements_per_byte(int32_t data_type);
/// Name of a data type ("FLOAT", ...; "<n>" for an unknown one).
std::string data_type_name(int32_t data_type);

struct StringStringEntry {
  std::string key;
  std::string value;
};

struct OperatorSetId {
  std::string domain;
  int64_t version = 0;
};

/// TensorShapeProto.Dimension: a value, a symbolic name, or neither (unknown extent).
struct Dimension {
  enum class Kind : uint8_t { none, value, param };
  Kind kind = Kind::none;
  int64_t value = 0;
  std::string param;
  std::string denotation;
};

/// TypeProto. Only tensor types are decoded in full; for the other kinds the kind is recorded and the content skipped.
struct TypeProto {
  enum class Kind : uint8_t {
    none = 0,
    tensor = 1,
    sequence = 4,
    map = 5,
    opaque = 7,
    sparse_tensor = 8,
    optional = 9
  };
  Kind kind = Kind::none;
  int32_t elem_type = 0;  // tensor: TensorProto.DataType
  bool has_shape = false;
  std::vector<Dimension> shape;  // tensor: dims (has_shape false: rank unknown)
  std::string denotation;
};

struct ValueInfo {
  std::string name;
  std::optional<TypeProto> type;
  std::string doc_string;
  std::vector<StringStringEntry> metadata_props;
};

/// TensorProto. After read_model, the data is in at most one of the fields below, consistent with dims and
/// data_type (checked): raw_data (has_raw_data) or the typed field onnx.proto assigns to data_type. External data is
/// read into raw_data (data_location then kDefault, external_data empty) unless a base folder is missing; an external
/// tensor holding data of its own as well is an error.
struct Tensor {
  enum DataLocation : int32_t { kDefault = 0, kExternal = 1 };
  std::vector<int64_t> dims;
  int32_t data_type = kUndefined;
  std::string name;
  std::string doc_string;
  std::vector<float> float_data;         // FLOAT, COMPLEX64 (two per element)
  std::vector<int32_t> int32_data;       // INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16, BFLOAT16, FLOAT8*, 4-bit
  std::vector<std::string> string_data;  // STRING
  std::vector<int64_t> int64_data;       // INT64
  std::vector<double> double_data;       // DOUBLE, COMPLEX128 (two per element)
  std::vector<uint64_t> uint64_data;     // UINT32, UINT64
  bool has_raw_data = false;
  std::string raw_data;  // little-endian bytes (a copy of the input's, or the external file's)
  std::vector<StringStringEntry> external_data;
  int32_t data_location = kDefault;
  std::vector<StringStringEntry> metadata_props;

  /// The element count (the product of dims); a ModelLoadError for negative dims or a count beyond int64.
  int64_t numel() const;
};

struct Graph;
struct Attribute {
  enum Type : int32_t {
    kUndefined = 0,
    kFloat = 1,
    kInt = 2,
    kString = 3,
    kTensor = 4,
    kGraph = 5,
    kFloats = 6,
    kInts = 7,
    kStrings = 8,
    kTensors = 9,
    kGraphs = 10,
    kSparseTensor = 11,
    kSparseTensors = 12,
    kTypeProto = 13,
    kTypeProtos = 14,
  };
  std::string name;
  std::string ref_attr_name;
  std::string doc_string;
  int32_t type = kUndefined;
  float f = 0.0f;
  int64_t i = 0;
  std::string s;
  std::optional<Tensor> t;
  std::unique_ptr<Graph> g;
  std::optional<TypeProto> tp;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<Tensor> tensors;
  std::vector<Graph> graphs;
  std::vector<TypeProto> type_protos;
};

struct Node {
  std::vector<std::string> input;
  std::vector<std::string> output;
  std::string name;
  std::string op_type;
  std::string domain;
  std::string overload;
  std::vector<Attribute> attribute;
  std::string doc_string;
  std::vector<StringStringEntry> metadata_props;
};

struct Graph {
  std::vector<Node> node;
  std::string name;
  std::vector<Tensor> initializer;
  std::string doc_string;
  std::vector<ValueInfo> input;
  std::vector<ValueInfo> output;
  std::vector<ValueInfo> value_info;
  std::vector<StringStringEntry> metadata_props;
};

struct Model {
  int64_t ir_version = 0;
  std::vector<OperatorSetId> opset_import;
  std::string producer_name;
  std::string producer_version;
  std::string domain;
  int64_t model_version = 0;
  std::string doc_string;
  std::optional<Graph> graph;
  std::vector<StringStringEntry> metadata_props;
};

/// Decodes a serialized ModelProto, leaving external tensors as the model describes them (data_location kExternal,
/// external_data entries). `source` names the input in messages.
Model decode_model(const void* data, size_t size, const std::string& source = "bytes");

/// Decodes a serialized ModelProto (decode_model, then load_external_data). External tensors are read from files in
/// `base_dir` (checked as load_external_data does); a model with external tensors and no `base_dir` is an error.
/// `source` names the input in messages ("bytes", a path).
Model read_model(const void* data, size_t size, const std::optional<std::string>& base_dir = std::nullopt,
                 const std::string& source = "bytes");

/// Reads and decodes the file at `path`; external data is resolved against the file's folder. The file is
/// memory-mapped (POSIX), so tensor data are copied once, from the page cache into the tensors; like every mmap-based
/// reader it assumes the file is not truncated while it is read.
Model read_model_file(const std::string& path);

/// Reads every external tensor of `model` into its raw_data, checking the reference: `location` relative, without
/// NUL or a '..' component, its canonical path (symlinks resolved) inside the canonical `base_dir`; `offset` and
/// `length` decimal integers with offset + length within the file; `length` = numel * element size; the tensors
/// reading one file take at most its size in all (overlapping ranges would let a small model ask for many times the
/// bytes on disk), checked before anything is read. `base_dir` nullopt: an error if any tensor is external (never the
/// working directory). `source` names the model in messages.
void load_external_data(Model& model, const std::optional<std::string>& base_dir, const std::string& source);

/// One entry of the reader's field table (for tests that pin it against onnx's descriptors).
struct FieldInfo {
  const char* message;  // "TensorProto", "TypeProto.Tensor", ...
  const char* field;
  int number;
  const char*
      type;  // "int64", "int32", "uint64", "float", "double", "string", "bytes", "enum <Name>", "message <Name>"
  bool repeated;
  const char* action;  // "decode", "skip" (known, ignored), "refuse" (an error when present)
};
/// The table the decoder dispatches on.
std::vector<FieldInfo> field_table();

}  // namespace dtd::onnx
