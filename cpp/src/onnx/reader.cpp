// The protobuf wire-format decoder of the ONNX reader (see dtd/onnx.hpp). One pass over the input, no virtual calls:
// a message is a byte span decoded by a loop over (tag, value) pairs that switches on the field number. Every length
// is checked against the bytes left before it is used, and nothing is allocated from a declared count: a packed
// array is sized from its byte length, and every decoded element is charged against a budget proportional to the
// input size.
#include <cstring>
#include <limits>
#include <utility>

#include "dtd/onnx.hpp"
#include "fields.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the ONNX reader copies little-endian protobuf fixed32/fixed64 values as they are: a little-endian host only"
#endif

namespace dtd::onnx {

using fields::F;
using fields::kFieldRows;
using fields::num;

namespace {

enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kStartGroup = 3, kEndGroup = 4, kFixed32 = 5 };

const char* wire_name(uint32_t wt) {
  switch (wt) {
    case kVarint: return "varint";
    case kFixed64: return "fixed64";
    case kLen: return "length-delimited";
    case kStartGroup: return "start group";
    case kEndGroup: return "end group";
    case kFixed32: return "fixed32";
    default: return "invalid";
  }
}

struct Span {
  const uint8_t* p;
  const uint8_t* end;
  bool empty() const { return p >= end; }
  size_t left() const { return static_cast<size_t>(end - p); }
};

class Decoder {
 public:
  Decoder(const uint8_t* data, size_t size, const std::string& source) : base_(data), source_(source) {
    const int64_t input = static_cast<int64_t>(std::min<size_t>(size, size_t{1} << 40));
    budget_ = input * kAllocationFactor + (int64_t{64} << 20);
  }

  Model model(Span s) {
    Model m;
    message_ = "ModelProto";
    decode(s, m);
    return m;
  }

 private:
  // ---- errors ----------------------------------------------------------------------------------------------------
  struct Frame {
    F field;
    int64_t index;  // position in a repeated field, -1 for a singular one
  };

  [[noreturn]] void fail(const uint8_t* at, const std::string& what) const {
    std::string path = "ModelProto";
    for (const Frame& f : path_) {
      path += '.';
      path += kFieldRows[static_cast<int>(f.field)].field;
      if (f.index >= 0) path += detail::concat('[', f.index, ']');
    }
    std::string field;
    if (field_number_ == 0) {
      field = message_;  // a check of the whole message (a tensor's data against its dims)
    } else if (field_ == F::unknown) {
      field = detail::concat(message_, " field ", field_number_);
    } else {
      field = detail::concat(message_, '.', kFieldRows[static_cast<int>(field_)].field, " (field ", field_number_, ')');
    }
    throw ModelLoadError(
        detail::concat(source_, ": malformed ONNX model at byte ", at - base_, ": ", field, " in ", path, ": ", what));
  }

  void charge(size_t bytes, const uint8_t* at) {
    budget_ -= static_cast<int64_t>(bytes);
    if (budget_ < 0)
      fail(at, detail::concat("the decoded model would take more than ", kAllocationFactor,
                              " bytes per input byte (a file of many empty messages?)"));
  }

  // ---- primitives ------------------------------------------------------------------------------------------------
  uint64_t varint(Span& s) {
    const uint8_t* p = s.p;
    if (p < s.end && *p < 0x80) {
      s.p = p + 1;
      return *p;
    }
    uint64_t r = 0;
    for (int i = 0, shift = 0; i < 10; ++i, shift += 7) {
      if (p >= s.end) fail(s.p, "truncated varint (the message ends inside it)");
      const uint8_t b = *p++;
      r |= static_cast<uint64_t>(b & 0x7f) << shift;  // the 10th byte's bits above 64 are dropped, as protobuf does
      if (b < 0x80) {
        s.p = p;
        return r;
      }
    }
    fail(s.p, "varint longer than 10 bytes");
  }

  Span take(Span& s, uint64_t n) {
    if (n > s.left()) fail(s.p, detail::concat("length ", n, " exceeds the ", s.left(), " bytes left"));
    Span sub{s.p, s.p + n};
    s.p += n;
    return sub;
  }

  Span length_delimited(Span& s) { return take(s, varint(s)); }

  void expect(uint32_t wt, uint32_t want) {
    if (wt != want) fail(at_, detail::concat("wire type ", wt, " (", wire_name(wt), "), expected ", wire_name(want)));
  }

  void skip(Span& s, uint32_t wt) {
    switch (wt) {
      case kVarint: varint(s); return;
      case kFixed64: take(s, 8); return;
      case kLen: length_delimited(s); return;
      case kFixed32: take(s, 4); return;
      case kStartGroup:
      case kEndGroup: fail(at_, "groups (wire types 3 and 4) are not supported");
      default: fail(at_, detail::concat("invalid wire type ", wt));
    }
  }

  int64_t int64(Span& s, uint32_t wt) {
    expect(wt, kVarint);
    return static_cast<int64_t>(varint(s));
  }

  int32_t int32_of(uint64_t u, const uint8_t* at) const {
    const int64_t v = static_cast<int64_t>(u);
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
      fail(at, detail::concat("value ", v, " does not fit in int32"));
    return static_cast<int32_t>(v);
  }

  int32_t int32(Span& s, uint32_t wt) {
    expect(wt, kVarint);
    const uint8_t* at = s.p;
    return int32_of(varint(s), at);
  }

  float float32(Span& s, uint32_t wt) {
    expect(wt, kFixed32);
    float v;
    std::memcpy(&v, take(s, 4).p, 4);
    return v;
  }

  void string(Span& s, uint32_t wt, std::string& out) {
    expect(wt, kLen);
    const Span v = length_delimited(s);
    charge(v.left(), v.p);
    out.assign(reinterpret_cast<const char*>(v.p), v.left());
  }

  void strings(Span& s, uint32_t wt, std::vector<std::string>& out) {
    expect(wt, kLen);
    const Span v = length_delimited(s);
    charge(v.left() + sizeof(std::string), v.p);
    out.emplace_back(reinterpret_cast<const char*>(v.p), v.left());
  }

  /// A repeated varint field (int64, uint64, int32), packed (one length-delimited run) or not (one value per tag).
  template <class T>
  void varints(Span& s, uint32_t wt, std::vector<T>& out) {
    if (wt != kLen) {
      expect(wt, kVarint);
      charge(sizeof(T), s.p);
      const uint8_t* at = s.p;
      out.push_back(convert<T>(varint(s), at));
      return;
    }
    Span run = length_delimited(s);
    size_t count = 0;  // one terminating byte per value: the exact count, so the vector grows once
    for (const uint8_t* q = run.p; q < run.end; ++q) count += *q < 0x80;
    charge(count * sizeof(T), run.p);
    out.reserve(out.size() + count);
    while (!run.empty()) {
      const uint8_t* at = run.p;
      out.push_back(convert<T>(varint(run), at));
    }
  }

  template <class T>
  T convert(uint64_t u, const uint8_t* at) const {
    if constexpr (std::is_same_v<T, int32_t>) {
      return int32_of(u, at);
    } else {
      (void)at;
      return static_cast<T>(u);
    }
  }

  /// A repeated fixed-size field (float: fixed32, double: fixed64), packed or not; copied with memcpy, so the input
  /// need not be aligned.
  template <class T>
  void fixeds(Span& s, uint32_t wt, std::vector<T>& out) {
    constexpr uint32_t single = sizeof(T) == 4 ? kFixed32 : kFixed64;
    if (wt != kLen) {
      expect(wt, single);
      charge(sizeof(T), s.p);
      T v;
      std::memcpy(&v, take(s, sizeof(T)).p, sizeof(T));
      out.push_back(v);
      return;
    }
    const Span run = length_delimited(s);
    if (run.left() % sizeof(T) != 0)
      fail(run.p, detail::concat("packed length ", run.left(), " is not a multiple of ", sizeof(T)));
    const size_t n = run.left() / sizeof(T);
    charge(n * sizeof(T), run.p);
    const size_t old = out.size();
    out.resize(old + n);
    if (n) std::memcpy(out.data() + old, run.p, n * sizeof(T));
  }

  /// Decodes a nested message of field `f` into `out` (merging, as protobuf does when a singular message field
  /// occurs twice), with the path and message name of errors inside it.
  template <class T>
  void message(Span& s, uint32_t wt, F f, int64_t index, T& out, const char* type) {
    expect(wt, kLen);
    Span sub = length_delimited(s);
    path_.push_back({f, index});
    const char* saved = message_;
    message_ = type;
    decode(sub, out);
    message_ = saved;
    path_.pop_back();
  }

  template <class T>
  T& add(std::vector<T>& v, const uint8_t* at) {
    charge(sizeof(T), at);
    return v.emplace_back();
  }

  template <class T>
  void add_message(Span& s, uint32_t wt, F f, std::vector<T>& v, const char* type) {
    charge(sizeof(T), s.p);
    const int64_t index = static_cast<int64_t>(v.size());
    message(s, wt, f, index, v.emplace_back(), type);
  }

  template <class T>
  void optional_message(Span& s, uint32_t wt, F f, std::optional<T>& v, const char* type) {
    if (!v) {
      charge(sizeof(T), s.p);
      v.emplace();
    }
    message(s, wt, f, -1, *v, type);
  }

  /// Reads the next tag of `s` into field_number_ / wt; false at the end of the message.
  bool next(Span& s, uint32_t& wt) {
    field_ = F::unknown;
    field_number_ = 0;
    if (s.empty()) return false;
    at_ = s.p;
    const uint64_t tag = varint(s);
    if (tag > std::numeric_limits<uint32_t>::max()) fail(at_, detail::concat("tag ", tag, " does not fit in 32 bits"));
    field_number_ = static_cast<uint32_t>(tag >> 3);
    wt = static_cast<uint32_t>(tag & 7);
    if (field_number_ == 0) fail(at_, "field number 0 is invalid");
    return true;
  }

  /// Sets the field of error messages; returns its number (for the switch).
  void at(F f) { field_ = f; }

  // ---- messages --------------------------------------------------------------------------------------------------
  void decode(Span s, StringStringEntry& e) {
    uint32_t wt;
    while (next(s, wt)) {
      switch (field_number_) {
        case num(F::StringStringEntryProto_key): at(F::StringStringEntryProto_key), string(s, wt, e.key); break;
        case num(F::StringStringEntryProto_value): at(F::StringStringEntryProto_value), string(s, wt, e.value); break;
        default: skip(s, wt);
      }
    }
  }

  void decode(Span s, OperatorSetId& o) {
    uint32_t wt;
    while (next(s, wt)) {
      switch (field_number_) {
        case num(F::OperatorSetIdProto_domain): at(F::OperatorSetIdProto_domain), string(s, wt, o.domain); break;
        case num(F::OperatorSetIdProto_version): at(F::OperatorSetIdProto_version), o.version = int64(s, wt); break;
        default: skip(s, wt);
      }
    }
  }

  void decode(Span s, Dimension& d) {
    uint32_t wt;
    while (next(s, wt)) {
      switch (field_number_) {
        case num(F::Dimension_dim_value):
          at(F::Dimension_dim_value);
          d.value = int64(s, wt);
          d.kind = Dimension::Kind::value;  // a oneof: the last member set wins
          d.param.clear();
          break;
        case num(F::Dimension_dim_param):
          at(F::Dimension_dim_param);
          string(s, wt, d.param);
          d.kind = Dimension::Kind::param;
          d.value = 0;
          break;
        case num(F::Dimension_denotation): at(F::Dimension_denotation), string(s, wt, d.denotation); break;
        default: skip(s, wt);
      }
    }
  }

  struct Shape {
    std::vector<Dimension>& dims;
  };
  void decode(Span s, Shape& shape) {
    uint32_t wt;
    while (next(s, wt)) {
      if (field_number_ == num(F::TensorShapeProto_dim)) {
        at(F::TensorShapeProto_dim);
        add_message(s, wt, F::TensorShapeProto_dim, shape.dims, "TensorShapeProto.Dimension");
      } else {
        skip(s, wt);
      }
    }
  }

  struct TensorType {
    TypeProto& type;
  };
  void decode(Span s, TensorType& t) {
    uint32_t wt;
    while (next(s, wt)) {
      switch (field_number_) {
        case num(F::TypeProto_Tensor_elem_type):
          at(F::TypeProto_Tensor_elem_type);
          t.type.elem_type = int32(s, wt);
          break;
        case num(F::TypeProto_Tensor_shape): {
          at(F::TypeProto_Tensor_shape);
          t.type.has_shape = true;
          Shape shape{t.type.shape};
          message(s, wt, F::TypeProto_Tensor_shape, -1, shape, "TensorShapeProto");
          break;
        }
        default: skip(s, wt);
      }
    }
  }

  void set_kind(TypeProto& t, TypeProto::Kind kind) {
    if (t.kind == kind) return;
    t.kind = kind;  // another member of the oneof clears the tensor type
    t.elem_type = 0;
    t.has_shape = false;
    t.shape.clear();
  }

  void decode(Span s, TypeProto& t) {
    uint32_t wt;
    while (next(s, wt)) {
      switch (field_number_) {
        case num(F::TypeProto_tensor_type): {
          at(F::TypeProto_tensor_type);
          set_kind(t, TypeProto::Kind::tensor);
          TensorType tensor{t};
          message(s, wt, F::TypeProto_tensor_type, -1, tensor, "TypeProto.Tensor");
          break;
        }
        case num(F::TypeProto_sequence_type):
          kind(s, wt, F::TypeProto_sequence_type, t, TypeProto::Kind::sequence);
          break;
        case num(F::TypeProto_map_type): kind(s, wt, F::TypeProto_map_type, t, TypeProto::Kind::map); break;
        case num(F::TypeProto_optional_type):
          kind(s, wt, F::TypeProto_optional_type, t, TypeProto::Kind::optional);
          break;
        case num(F::TypeProto_sparse_tensor_type):
          kind(s, wt, F::TypeProto_sparse_tensor_type, t, TypeProto::Kind::sparse_tensor);
          break;
        case num(F::TypeProto_opaque_type): kind(s, wt, F::TypeProto_opaque_type, t, TypeProto::Kind::opaque); break;
        case num(F::TypeProto_denotation): at(F::TypeProto_denotation), string(s, wt, t.denotation); break;
        default: skip(s, wt);
      }
    }
  }

  /// A oneof member of TypeProto that is not a tensor type: the kind is recorded, the content skipped.
  void kind(Span& s, uint32_t wt, F f, TypeProto& t, TypeProto::Kind k) {
    at(f);
    expect(wt, kLen);
    length_delimited(s);
    set_kind(t, k);
  }

  void decode(Span s, ValueInfo& v) {
    uint32_t wt;
    while (next(s, wt)) {
      switch (field_number_) {
        case num(F::ValueInfoProto_name): at(F::ValueInfoProto_name), string(s, wt, v.name); break;
        case num(F::ValueInfoProto_type):
          at(F::ValueInfoProto_type);
          optional_message(s, wt, F::ValueInfoProto_type, v.type, "TypeProto");
          break;
        case num(F::ValueInfoProto_doc_string): at(F::ValueInfoProto_doc_string), string(s, wt, v.doc_string); break;
        case num(F::ValueInfoProto_metadata_props):
          at(F::ValueInfoProto_metadata_props);
          add_message(s, wt, F::ValueInfoProto_metadata_props, v.metadata_props, "StringStringEntryProto");
          break;
        default: skip(s, wt);
      }
    }
  }

  [[noreturn]] void refuse(F f, const char* what) {
    at(f);
    fail(at_, what);
  }

  void decode(Span s, Tensor& t) {
    const uint8_t* start = s.p;
    uint32_t wt;
    while (next(s, wt)) {
      switch (field_number_) {
        case num(F::TensorProto_dims): at(F::TensorProto_dims), varints(s, wt, t.dims); break;
        case num(F::TensorProto_data_type): at(F::TensorProto_data_type), t.data_type = int32(s, wt); break;
        case num(F::TensorProto_segment): refuse(F::TensorProto_segment, "segmented tensors are not supported");
        case num(F::TensorProto_float_data): at(F::TensorProto_float_data), fixeds(s, wt, t.float_data); break;
        case num(F::TensorProto_int32_data): at(F::TensorProto_int32_data), varints(s, wt, t.int32_data); break;
        case num(F::TensorProto_string_data): at(F::TensorProto_string_data), strings(s, wt, t.string_data); break;
        case num(F::TensorProto_int64_data): at(F::TensorProto_int64_data), varints(s, wt, t.int64_data); break;
        case num(F::TensorProto_name): at(F::TensorProto_name), string(s, wt, t.name); break;
        case num(F::TensorProto_doc_string): at(F::TensorProto_doc_string), string(s, wt, t.doc_string); break;
        case num(F::TensorProto_raw_data):
          at(F::TensorProto_raw_data);
          string(s, wt, t.raw_data);  // the one copy of the data
          t.has_raw_data = true;
          break;
        case num(F::TensorProto_external_data):
          at(F::TensorProto_external_data);
          add_message(s, wt, F::TensorProto_external_data, t.external_data, "StringStringEntryProto");
          break;
        case num(F::TensorProto_data_location): {
          at(F::TensorProto_data_location);
          const uint8_t* v = s.p;
          t.data_location = int32(s, wt);
          if (t.data_location != Tensor::kDefault && t.data_location != Tensor::kExternal)
            fail(v, detail::concat("unknown DataLocation ", t.data_location, " (0 DEFAULT, 1 EXTERNAL)"));
          break;
        }
        case num(F::TensorProto_double_data): at(F::TensorProto_double_data), fixeds(s, wt, t.double_data); break;
        case num(F::TensorProto_uint64_data): at(F::TensorProto_uint64_data), varints(s, wt, t.uint64_data); break;
        case num(F::TensorProto_metadata_props):
          at(F::TensorProto_metadata_props);
          add_message(s, wt, F::TensorProto_metadata_props, t.metadata_props, "StringStringEntryProto");
          break;
        default: skip(s, wt);
      }
    }
    // external_data means something only with data_location EXTERNAL (onnx.proto; onnxruntime reads it only then):
    // entries on a tensor kept in the file are dropped, so that nothing downstream takes them for a location.
    if (t.data_location != Tensor::kExternal) t.external_data.clear();
    check(t, start);
  }

  /// The tensor's data agrees with its dims and data_type: one field holds it, the one onnx.proto assigns to the
  /// type, with numel values (raw_data: numel * element size bytes).
  void check(const Tensor& t, const uint8_t* start) {
    field_ = F::unknown;
    field_number_ = 0;
    int64_t numel = 1;
    for (int64_t d : t.dims) {
      if (d < 0) fail(start, detail::concat("tensor '", t.name, "' has a negative dimension ", d));
      if (__builtin_mul_overflow(numel, d, &numel))
        fail(start, detail::concat("tensor '", t.name, "': the product of its dims does not fit in int64"));
    }
    struct Held {
      const char* field;
      size_t count;
    };
    const Held held[] = {{"raw_data", t.raw_data.size()},      {"float_data", t.float_data.size()},
                         {"int32_data", t.int32_data.size()},  {"string_data", t.string_data.size()},
                         {"int64_data", t.int64_data.size()},  {"double_data", t.double_data.size()},
                         {"uint64_data", t.uint64_data.size()}};
    const Held* data = nullptr;
    for (const Held& h : held) {
      if (h.count == 0 && !(&h == &held[0] && t.has_raw_data)) continue;
      if (data) fail(start, detail::concat("tensor '", t.name, "' holds data in both ", data->field, " and ", h.field));
      data = &h;
    }
    if (t.data_location == Tensor::kExternal) {
      // The size is checked when the file is read (load_external_data), into raw_data: data held here as well would
      // leave the tensor with two copies, maybe of different sizes (onnx's checker refuses such a tensor too).
      if (data)
        fail(start,
             detail::concat("tensor '", t.name, "' keeps its data in an external file and also holds ", data->field));
      return;
    }
    const std::string type = data_type_name(t.data_type);
    if (!data) {
      if (numel != 0) fail(start, detail::concat("tensor '", t.name, "' of ", numel, " elements holds no data"));
      return;
    }
    const int64_t pack = elements_per_byte(t.data_type);
    int64_t expected = 0;
    const char* want = nullptr;
    if (data == &held[0]) {
      const int size = element_size(t.data_type);
      if (size == 0) fail(start, detail::concat("tensor '", t.name, "' of element type ", type, " has raw_data"));
      want = "raw_data";
      if (pack > 1) {
        expected = numel / pack + (numel % pack != 0);  // several elements share a byte
      } else if (__builtin_mul_overflow(numel, static_cast<int64_t>(size), &expected)) {
        fail(start, detail::concat("tensor '", t.name, "': its byte size does not fit in int64"));
      }
    } else {
      int64_t per = 1;
      switch (t.data_type) {
        case kFloat: want = "float_data"; break;
        case kComplex64: want = "float_data", per = 2; break;
        case kDouble: want = "double_data"; break;
        case kComplex128: want = "double_data", per = 2; break;
        case kInt64: want = "int64_data"; break;
        case kUint32:
        case kUint64: want = "uint64_data"; break;
        case kString: want = "string_data"; break;
        case kInt32:
        case kInt16:
        case kInt8:
        case kUint16:
        case kUint8:
        case kBool:
        case kFloat16:
        case kBfloat16:
        case kFloat8E4M3FN:
        case kFloat8E4M3FNUZ:
        case kFloat8E5M2:
        case kFloat8E5M2FNUZ:
        case kUint4:
        case kInt4:
        case kFloat4E2M1:
        case kFloat8E8M0:
        case kUint2:
        case kInt2:
        case kFloat6E2M3:
        case kFloat6E3M2: want = "int32_data"; break;
        default: fail(start, detail::concat("tensor '", t.name, "' holds data of unknown element type ", type));
      }
      if (std::strcmp(want, data->field) != 0)
        fail(start, detail::concat("tensor '", t.name, "' of element type ", type, " holds its data in ", data->field,
                                   ", expected ", want));
      if (pack > 1) {
        expected = numel / pack + (numel % pack != 0);  // several values per int32_data entry, as in raw_data
      } else if (__builtin_mul_overflow(numel, per, &expected)) {
        fail(start, detail::concat("tensor '", t.name, "': its value count does not fit in int64"));
      }
    }
    if (static_cast<uint64_t>(expected) != data->count)
      fail(start, detail::concat("tensor '", t.name, "' of ", numel, " elements of type ", type, " holds ", data->count,
                                 data == &held[0] ? " bytes" : " values", " in ", want, ", expected ", expected));
  }

  void decode(Span s, Attribute& a) {
    uint32_t wt;
    while (next(s, wt)) {
      switch (field_number_) {
        case num(F::AttributeProto_name): at(F::AttributeProto_name), string(s, wt, a.name); break;
        case num(F::AttributeProto_ref_attr_name):
          at(F::AttributeProto_ref_attr_name), string(s, wt, a.ref_attr_name);
          break;
        case num(F::AttributeProto_doc_string): at(F::AttributeProto_doc_string), string(s, wt, a.doc_string); break;
        case num(F::AttributeProto_type): {
          at(F::AttributeProto_type);
          const uint8_t* v = s.p;
          a.type = int32(s, wt);
          if (a.type < Attribute::kUndefined || a.type > Attribute::kTypeProtos)
            fail(v, detail::concat("unknown AttributeType ", a.type));
          break;
        }
        case num(F::AttributeProto_f): at(F::AttributeProto_f), a.f = float32(s, wt); break;
        case num(F::AttributeProto_i): at(F::AttributeProto_i), a.i = int64(s, wt); break;
        case num(F::AttributeProto_s): at(F::AttributeProto_s), string(s, wt, a.s); break;
        case num(F::AttributeProto_t):
          at(F::AttributeProto_t);
          optional_message(s, wt, F::AttributeProto_t, a.t, "TensorProto");
          break;
        case num(F::AttributeProto_g):
          at(F::AttributeProto_g);
          if (!a.g) {
            charge(sizeof(Graph), s.p);
            a.g = std::make_unique<Graph>();
          }
          message(s, wt, F::AttributeProto_g, -1, *a.g, "GraphProto");
          break;
        case num(F::AttributeProto_sparse_tensor):
          refuse(F::AttributeProto_sparse_tensor, "sparse tensors are not supported");
        case num(F::AttributeProto_tp):
          at(F::AttributeProto_tp);
          optional_message(s, wt, F::AttributeProto_tp, a.tp, "TypeProto");
          break;
        case num(F::AttributeProto_floats): at(F::AttributeProto_floats), fixeds(s, wt, a.floats); break;
        case num(F::AttributeProto_ints): at(F::AttributeProto_ints), varints(s, wt, a.ints); break;
        case num(F::AttributeProto_strings): at(F::AttributeProto_strings), strings(s, wt, a.strings); break;
        case num(F::AttributeProto_tensors):
          at(F::AttributeProto_tensors);
          add_message(s, wt, F::AttributeProto_tensors, a.tensors, "TensorProto");
          break;
        case num(F::AttributeProto_graphs):
          at(F::AttributeProto_graphs);
          add_message(s, wt, F::AttributeProto_graphs, a.graphs, "GraphProto");
          break;
        case num(F::AttributeProto_sparse_tensors):
          refuse(F::AttributeProto_sparse_tensors, "sparse tensors are not supported");
        case num(F::AttributeProto_type_protos):
          at(F::AttributeProto_type_protos);
          add_message(s, wt, F::AttributeProto_type_protos, a.type_protos, "TypeProto");
          break;
        default: skip(s, wt);
      }
    }
  }

  void decode(Span s, Node& n) {
    uint32_t wt;
    while (next(s, wt)) {
      switch (field_number_) {
        case num(F::NodeProto_input): at(F::NodeProto_input), strings(s, wt, n.input); break;
        case num(F::NodeProto_output): at(F::NodeProto_output), strings(s, wt, n.output); break;
        case num(F::NodeProto_name): at(F::NodeProto_name), string(s, wt, n.name); break;
        case num(F::NodeProto_op_type): at(F::NodeProto_op_type), string(s, wt, n.op_type); break;
        case num(F::NodeProto_domain): at(F::NodeProto_domain), string(s, wt, n.domain); break;
        case num(F::NodeProto_overload): at(F::NodeProto_overload), string(s, wt, n.overload); break;
        case num(F::NodeProto_attribute):
          at(F::NodeProto_attribute);
          add_message(s, wt, F::NodeProto_attribute, n.attribute, "AttributeProto");
          break;
        case num(F::NodeProto_doc_string): at(F::NodeProto_doc_string), string(s, wt, n.doc_string); break;
        case num(F::NodeProto_metadata_props):
          at(F::NodeProto_metadata_props);
          add_message(s, wt, F::NodeProto_metadata_props, n.metadata_props, "StringStringEntryProto");
          break;
        default: skip(s, wt);
      }
    }
  }

  void decode(Span s, Graph& g) {
    if (++graph_depth_ > kMaxGraphDepth) fail(s.p, detail::concat("graphs nest deeper than ", kMaxGraphDepth));
    uint32_t wt;
    while (next(s, wt)) {
      switch (field_number_) {
        case num(F::GraphProto_node):
          at(F::GraphProto_node);
          add_message(s, wt, F::GraphProto_node, g.node, "NodeProto");
          break;
        case num(F::GraphProto_name): at(F::GraphProto_name), string(s, wt, g.name); break;
        case num(F::GraphProto_initializer):
          at(F::GraphProto_initializer);
          add_message(s, wt, F::GraphProto_initializer, g.initializer, "TensorProto");
          break;
        case num(F::GraphProto_sparse_initializer):
          refuse(F::GraphProto_sparse_initializer, "sparse initializers are not supported");
        case num(F::GraphProto_doc_string): at(F::GraphProto_doc_string), string(s, wt, g.doc_string); break;
        case num(F::GraphProto_input):
          at(F::GraphProto_input);
          add_message(s, wt, F::GraphProto_input, g.input, "ValueInfoProto");
          break;
        case num(F::GraphProto_output):
          at(F::GraphProto_output);
          add_message(s, wt, F::GraphProto_output, g.output, "ValueInfoProto");
          break;
        case num(F::GraphProto_value_info):
          at(F::GraphProto_value_info);
          add_message(s, wt, F::GraphProto_value_info, g.value_info, "ValueInfoProto");
          break;
        case num(F::GraphProto_metadata_props):
          at(F::GraphProto_metadata_props);
          add_message(s, wt, F::GraphProto_metadata_props, g.metadata_props, "StringStringEntryProto");
          break;
        default: skip(s, wt);  // quantization_annotation and unknown fields
      }
    }
    --graph_depth_;
  }

  void decode(Span s, Model& m) {
    uint32_t wt;
    while (next(s, wt)) {
      switch (field_number_) {
        case num(F::ModelProto_ir_version): at(F::ModelProto_ir_version), m.ir_version = int64(s, wt); break;
        case num(F::ModelProto_opset_import):
          at(F::ModelProto_opset_import);
          add_message(s, wt, F::ModelProto_opset_import, m.opset_import, "OperatorSetIdProto");
          break;
        case num(F::ModelProto_producer_name): at(F::ModelProto_producer_name), string(s, wt, m.producer_name); break;
        case num(F::ModelProto_producer_version):
          at(F::ModelProto_producer_version), string(s, wt, m.producer_version);
          break;
        case num(F::ModelProto_domain): at(F::ModelProto_domain), string(s, wt, m.domain); break;
        case num(F::ModelProto_model_version): at(F::ModelProto_model_version), m.model_version = int64(s, wt); break;
        case num(F::ModelProto_doc_string): at(F::ModelProto_doc_string), string(s, wt, m.doc_string); break;
        case num(F::ModelProto_graph):
          at(F::ModelProto_graph);
          optional_message(s, wt, F::ModelProto_graph, m.graph, "GraphProto");
          break;
        case num(F::ModelProto_metadata_props):
          at(F::ModelProto_metadata_props);
          add_message(s, wt, F::ModelProto_metadata_props, m.metadata_props, "StringStringEntryProto");
          break;
        default: skip(s, wt);  // training_info, functions and unknown fields
      }
    }
  }

  const uint8_t* base_;
  const std::string& source_;
  int64_t budget_ = 0;
  int graph_depth_ = 0;
  std::vector<Frame> path_;
  const char* message_ = "ModelProto";
  F field_ = F::unknown;
  uint32_t field_number_ = 0;
  const uint8_t* at_ = nullptr;  // the current field's tag
};

}  // namespace

int element_size(int32_t data_type) {
  switch (data_type) {
    case kFloat:
    case kInt32:
    case kUint32: return 4;
    case kUint8:
    case kInt8:
    case kBool:
    case kFloat8E4M3FN:
    case kFloat8E4M3FNUZ:
    case kFloat8E5M2:
    case kFloat8E5M2FNUZ:
    case kUint4:
    case kInt4:
    case kFloat4E2M1:
    case kFloat8E8M0:
    case kUint2:
    case kInt2: return 1;
    case kUint16:
    case kInt16:
    case kFloat16:
    case kBfloat16: return 2;
    case kInt64:
    case kDouble:
    case kUint64:
    case kComplex64: return 8;
    case kComplex128: return 16;
    default: return 0;
  }
}

int elements_per_byte(int32_t data_type) {
  switch (data_type) {
    case kUint4:
    case kInt4:
    case kFloat4E2M1: return 2;
    case kUint2:
    case kInt2: return 4;
    default: return 1;
  }
}

std::string data_type_name(int32_t data_type) {
  static const char* const names[] = {"UNDEFINED",      "FLOAT",    "UINT8",        "INT8",           "UINT16",
                                      "INT16",          "INT32",    "INT64",        "STRING",         "BOOL",
                                      "FLOAT16",        "DOUBLE",   "UINT32",       "UINT64",         "COMPLEX64",
                                      "COMPLEX128",     "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2",
                                      "FLOAT8E5M2FNUZ", "UINT4",    "INT4",         "FLOAT4E2M1"};
  if (data_type >= 0 && data_type < static_cast<int32_t>(sizeof(names) / sizeof(names[0]))) return names[data_type];
  return detail::concat(data_type);
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n))
      throw ModelLoadError(detail::concat("tensor '", name,
                                          "': dims with a negative entry or an element count beyond "
                                          "int64"));
  }
  return n;
}

Model decode_model(const void* data, size_t size, const std::string& source) {
  const auto* p = static_cast<const uint8_t*>(data);
  Decoder decoder(p, size, source);
  return decoder.model(Span{p, p + size});
}

std::vector<FieldInfo> field_table() {
  std::vector<FieldInfo> out;
  for (const fields::FieldRow& r : kFieldRows)
    out.push_back({r.message, r.field, static_cast<int>(r.number), r.type, r.repeated, r.action});
  return out;
}

}  // namespace dtd::onnx
