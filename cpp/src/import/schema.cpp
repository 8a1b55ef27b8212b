// Node validation before conversion: arity and attributes per op and opset, from the node table (schema_table.inc,
// generated from tools/import_schema.py by tools/gen_import_schema.py).
#include <set>

#include "context.hpp"

namespace dtd::importer {

using detail::concat;

#include "schema_table.inc"

int64_t schema_max_opset() {
  return kSchemaMaxOpset;
}
int64_t schema_ir_version() {
  return kSchemaIrVersion;
}
const char* schema_onnx_version() {
  return kSchemaOnnxVersion;
}

namespace {

const char* type_name(int32_t type) {
  switch (type) {
    case ox::Attribute::kUndefined: return "UNDEFINED";
    case ox::Attribute::kFloat: return "FLOAT";
    case ox::Attribute::kInt: return "INT";
    case ox::Attribute::kString: return "STRING";
    case ox::Attribute::kTensor: return "TENSOR";
    case ox::Attribute::kGraph: return "GRAPH";
    case ox::Attribute::kFloats: return "FLOATS";
    case ox::Attribute::kInts: return "INTS";
    case ox::Attribute::kStrings: return "STRINGS";
    case ox::Attribute::kTensors: return "TENSORS";
    case ox::Attribute::kGraphs: return "GRAPHS";
    case ox::Attribute::kSparseTensor: return "SPARSE_TENSOR";
    case ox::Attribute::kSparseTensors: return "SPARSE_TENSORS";
    case ox::Attribute::kTypeProto: return "TYPE_PROTO";
    case ox::Attribute::kTypeProtos: return "TYPE_PROTOS";
    default: return nullptr;
  }
}

bool fits(int64_t count, int low, int high) {
  return low <= count && (high < 0 || count <= high);
}

/// The arity check: nullopt when `count` fits, else the problem.
std::optional<std::string> count_problem(const char* what, int64_t count, int low, int high,
                                         const std::vector<const SchemaRow*>& rows, bool inputs, int since) {
  if (fits(count, low, high)) return std::nullopt;
  const std::string expected = low == high ? std::to_string(low)
                               : high >= 0 ? concat(low, " to ", high)
                                           : concat("at least ", low);
  std::string hint;
  for (const SchemaRow* r : rows) {
    if (inputs ? fits(count, r->min_inputs, r->max_inputs) : fits(count, r->min_outputs, r->max_outputs)) {
      if (r->since > since) hint = concat(" (", count, " ", what, " are valid from opset ", r->since, " on)");
      break;
    }
  }
  return concat(count, " ", what, ", expected ", expected, hint);
}

const std::set<std::string>& boolean_attributes() {
  static const std::set<std::string> names = {"transA",
                                              "transB",
                                              "keepdims",
                                              "ceil_mode",
                                              "count_include_pad",
                                              "allowzero",
                                              "noop_with_empty_axes",
                                              "training_mode",
                                              "storage_order",
                                              "select_last_index"};
  return names;
}

const std::set<std::string>& geometry_attributes() {
  static const std::set<std::string> names = {"kernel_shape", "strides", "dilations", "pads"};
  return names;
}

}  // namespace

void check_node(const ox::Node& node, const std::string& name, int64_t opset) {
  std::vector<const SchemaRow*> rows;
  for (const SchemaRow& r : schema_rows())
    if (node.op_type == r.op) rows.push_back(&r);
  const SchemaRow* schema = nullptr;
  for (const SchemaRow* r : rows)
    if (r->since <= opset) schema = r;
  if (!schema) return;
  const std::string where = concat(node.op_type, " '", name, "' (opset ", opset, ")");
  for (auto problem : {count_problem("inputs", static_cast<int64_t>(node.input.size()), schema->min_inputs,
                                     schema->max_inputs, rows, true, schema->since),
                       count_problem("outputs", static_cast<int64_t>(node.output.size()), schema->min_outputs,
                                     schema->max_outputs, rows, false, schema->since)}) {
    if (problem) throw ModelLoadError(concat(where, ": ", *problem));
  }
  std::set<std::string> seen;
  for (const ox::Attribute& attr : node.attribute) {
    if (!seen.insert(attr.name).second)
      throw ModelLoadError(concat(where, ": attribute '", attr.name, "' is given twice"));
    const char* expected = nullptr;
    for (const auto& [key, kind] : schema->attributes)
      if (attr.name == key) expected = kind;
    if (!expected) {
      bool harmless = false;
      for (const HarmlessAttribute& h : harmless_attributes())
        harmless = harmless || (node.op_type == h.op && attr.name == h.attribute && attr.type == ox::Attribute::kInt &&
                                attr.i == h.value);
      if (harmless) continue;
      std::string known;
      for (const auto& [key, kind] : schema->attributes) known += (known.empty() ? "" : ", ") + std::string(key);
      if (known.empty()) known = "none";
      std::vector<int> other;
      for (const SchemaRow* r : rows)
        for (const auto& [key, kind] : r->attributes)
          if (attr.name == key) other.push_back(r->since);
      std::string hint;
      if (!other.empty() && other.front() > opset) {
        hint = concat("; it is defined from opset ", other.front(), " on");
      } else if (!other.empty()) {
        for (const SchemaRow* r : rows) {
          bool defines = false;
          for (const auto& [key, kind] : r->attributes) defines = defines || attr.name == key;
          if (r->since > other.back() && !defines) {
            hint = concat("; it is defined before opset ", r->since, " only");
            break;
          }
        }
      }
      throw ModelLoadError(concat(where, ": unknown attribute '", attr.name, "' (the op defines: ", known, hint, ")"));
    }
    const char* actual_name = type_name(attr.type);
    const std::string actual = actual_name ? actual_name : std::to_string(attr.type);
    if (actual != expected)
      throw ModelLoadError(concat(where, ": attribute '", attr.name, "' has type ", actual, ", expected ", expected));
    if (boolean_attributes().count(attr.name) && attr.type == ox::Attribute::kInt && attr.i != 0 && attr.i != 1)
      throw ModelLoadError(concat(where, ": attribute '", attr.name, "' is a flag (0 or 1), got ", attr.i));
    if (geometry_attributes().count(attr.name) && attr.type == ox::Attribute::kInts) {
      constexpr int64_t limit = int64_t{1} << 31;
      for (int64_t v : attr.ints) {
        if (v < -limit || v >= limit)
          throw UnsupportedModelError(
              concat(where, ": attribute '", attr.name, "' holds ", v, "; extents beyond +-2^31 are not supported"));
      }
    }
  }
}

void check_constant_inputs(const ox::Node& node, const std::string& name, int64_t opset,
                           const std::map<std::string, std::vector<int64_t>>& dims) {
  for (const InputForm& f : input_forms()) {
    if (node.op_type != f.op || opset < f.since) continue;
    const auto index = static_cast<size_t>(f.index);
    const std::string value = index < node.input.size() ? node.input[index] : std::string();
    auto it = dims.find(value);
    if (value.empty() || it == dims.end()) continue;
    const std::string form = f.form;
    const std::vector<int64_t>& d = it->second;
    const bool ok = form == "scalar" ? (d.empty() || d == std::vector<int64_t>{1})
                    : form == "axes" ? d.size() <= 1
                                     : d.size() == 1;
    if (!ok) {
      const char* text = form == "vector" ? "a 1-D tensor" : form == "axes" ? "a 1-D tensor or a scalar" : "a scalar";
      throw ModelLoadError(concat(node.op_type, " '", name, "' (opset ", opset, "): input ", f.index, " '", value,
                                  "' must be ", text, ", got a constant of shape ", py_list(d)));
    }
  }
}

}  // namespace dtd::importer
