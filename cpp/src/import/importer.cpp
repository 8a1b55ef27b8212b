// The import driver: graph checks, topological order, the conversion of each node in that order, and the ModelSpec.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <queue>
#include <sstream>

#include "context.hpp"
#include "fuse.hpp"
#include "ops.hpp"
#include "ops_pad.hpp"

namespace dtd {

using detail::concat;
using namespace importer;

namespace {

constexpr int64_t kMinOpset = 6;

/// Element types accepted for the model input, with NumPy's names.
const char* float_type_name(int32_t code) {
  switch (code) {
    case ox::kFloat: return "float32";
    case ox::kDouble: return "float64";
    case ox::kFloat16: return "float16";
    case ox::kBfloat16: return "bfloat16";
    default: return nullptr;
  }
}

/// onnx.TensorProto.DataType.Name, or "<code> (unknown)".
std::string onnx_type_name(int32_t code) {
  if (code >= 0 && code <= ox::kFloat4E2M1) return ox::data_type_name(code);
  return concat(code, " (unknown)");
}

bool is_default_domain(const std::string& d) {
  return d.empty() || d == "ai.onnx";
}

void check_graph_size(const ox::Model& model, const ImportLimits& limits) {
  int64_t nodes = 0;
  std::vector<std::pair<const ox::Graph*, int64_t>> stack{{&*model.graph, 1}};
  while (!stack.empty()) {
    auto [graph, depth] = stack.back();
    stack.pop_back();
    if (depth > limits.max_depth)
      throw ModelLoadError(concat("graphs are nested more than ", limits.max_depth,
                                  " levels deep in node attributes (limit max_depth; raise it with dtd.load(..., "
                                  "limits=dtd.Limits(max_depth=...)))"));
    nodes += static_cast<int64_t>(graph->node.size());
    if (nodes > limits.max_nodes)
      throw ModelLoadError(concat("the model has more than ", limits.max_nodes,
                                  " nodes (limit max_nodes; raise it with dtd.load(..., "
                                  "limits=dtd.Limits(max_nodes=...)))"));
    for (const ox::Node& node : graph->node) {
      for (const ox::Attribute& attr : node.attribute) {
        if (attr.g) stack.push_back({attr.g.get(), depth + 1});
        for (const ox::Graph& sub : attr.graphs) stack.push_back({&sub, depth + 1});
      }
    }
  }
}

int64_t default_opset(const ox::Model& model) {
  std::map<std::string, int64_t> versions;
  for (const ox::OperatorSetId& imp : model.opset_import) versions[imp.domain] = imp.version;
  std::optional<int64_t> opset;
  for (const char* d : {"", "ai.onnx"}) {
    auto it = versions.find(d);
    if (it != versions.end()) {
      opset = it->second;
      break;
    }
  }
  if (!opset) {
    if (model.graph->node.empty())
      throw ModelLoadError("the model has no graph nodes and no default-domain opset (empty or not ONNX?)");
    throw UnsupportedModelError("the model does not import the default ONNX domain");
  }
  const int64_t newest = schema_max_opset();
  if (*opset < kMinOpset || *opset > newest) {
    const std::string why =
        *opset < kMinOpset ? "older than dtd supports"
                           : concat("newer than the newest the installed onnx ", schema_onnx_version(), " defines");
    throw UnsupportedModelError(concat("opset ", *opset, " of the default ONNX domain is ", why,
                                       " (supported: ", kMinOpset, "..", newest, ")"));
  }
  const auto& nodes = model.graph->node;
  for (size_t index = 0; index < nodes.size(); ++index) {
    const ox::Node& node = nodes[index];
    if (is_default_domain(node.domain)) continue;
    const std::string name = node.name.empty() ? concat(node.op_type, "_", index) : node.name;
    auto it = versions.find(node.domain);
    const std::string imported = it != versions.end() ? concat("opset ", it->second) : "not imported";
    throw UnsupportedModelError(concat("node ", node.op_type, " '", name, "' uses the domain '", node.domain, "' (",
                                       imported, "); only the default ONNX domain ('' or 'ai.onnx') is supported"));
  }
  return *opset;
}

std::optional<Dims> declared_shape(const ox::ValueInfo& value) {
  if (!value.type || value.type->kind != ox::TypeProto::Kind::tensor || !value.type->has_shape) return std::nullopt;
  Dims dims;
  for (const ox::Dimension& d : value.type->shape)
    dims.push_back(d.kind == ox::Dimension::Kind::value ? std::optional<int64_t>(d.value) : std::nullopt);
  return dims;
}

struct DataInput {
  std::string name;
  Dims shape;  // batch included, as declared
  std::vector<int64_t> sample;
  std::string dtype;
};

DataInput data_input(const ox::Graph& graph, const std::map<std::string, Constant>& consts) {
  std::vector<const ox::ValueInfo*> inputs;
  for (const ox::ValueInfo& v : graph.input)
    if (!consts.count(v.name)) inputs.push_back(&v);
  if (inputs.empty()) throw UnsupportedModelError("the graph has no data input (it computes a constant)");
  if (inputs.size() > 1) {
    std::string names;
    for (const ox::ValueInfo* v : inputs) names += (names.empty() ? "'" : ", '") + v->name + "'";
    throw UnsupportedModelError(
        concat("the graph has ", inputs.size(), " data inputs (", names, "); exactly one is supported"));
  }
  const ox::ValueInfo& value = *inputs[0];
  if (!value.type || value.type->kind != ox::TypeProto::Kind::tensor)
    throw UnsupportedModelError(concat("the graph input '", value.name, "' is not a tensor"));
  const char* dtype = float_type_name(value.type->elem_type);
  if (!dtype)
    throw UnsupportedModelError(concat("the graph input '", value.name, "' has element type ",
                                       onnx_type_name(value.type->elem_type), "; a float is expected"));
  auto shape = declared_shape(value);
  if (!shape || shape->size() < 2)
    throw UnsupportedModelError(concat("the graph input '", value.name,
                                       "' must have a known rank >= 2 (a batch axis and a sample shape), got ",
                                       shape ? py_list(*shape) : std::string("unknown")));
  std::vector<int64_t> sample;
  for (size_t i = 1; i < shape->size(); ++i) {
    if ((*shape)[i] && *(*shape)[i] == 0)
      throw UnsupportedModelError(concat("the graph input '", value.name, "' has shape ", py_list(*shape),
                                         ": an empty axis (extent 0) is not supported"));
  }
  for (size_t i = 1; i < shape->size(); ++i) {
    if (!(*shape)[i] || *(*shape)[i] <= 0) {
      std::string dims = "[";
      for (size_t k = 0; k < shape->size(); ++k)
        dims += (k ? ", " : "") + ((*shape)[k] ? std::to_string(*(*shape)[k]) : std::string("'?'"));
      throw UnsupportedModelError(concat("the graph input '", value.name, "' has shape ", dims,
                                         "]; only the batch axis (the first) may be dynamic"));
    }
    sample.push_back(*(*shape)[i]);
  }
  return {value.name, *shape, sample, dtype};
}

const ox::ValueInfo& graph_output(const ox::Graph& graph) {
  if (graph.output.size() != 1) {
    if (graph.output.empty()) throw ModelLoadError("the graph has no output");
    std::string names;
    for (const ox::ValueInfo& v : graph.output) names += (names.empty() ? "'" : ", '") + v.name + "'";
    throw UnsupportedModelError(
        concat("the graph has ", graph.output.size(), " outputs (", names, "); exactly one is supported"));
  }
  return graph.output[0];
}

std::vector<std::string> node_names(const std::vector<ox::Node>& nodes) {
  std::set<std::string> used;
  std::map<std::string, int64_t> next_suffix;
  std::vector<std::string> names;
  for (size_t index = 0; index < nodes.size(); ++index) {
    const std::string base = nodes[index].name.empty() ? concat(nodes[index].op_type, "_", index) : nodes[index].name;
    std::string name = base;
    auto it = next_suffix.find(base);
    int64_t k = it == next_suffix.end() ? 1 : it->second;
    if (used.count(name)) {
      name = concat(base, "_", k);
      while (used.count(name)) name = concat(base, "_", ++k);
      next_suffix[base] = k + 1;
    }
    used.insert(name);
    names.push_back(name);
  }
  return names;
}

std::vector<size_t> topological_order(const std::vector<ox::Node>& nodes, const std::vector<std::string>& names,
                                      const std::set<std::string>& available) {
  std::map<std::string, size_t> producer;
  for (size_t index = 0; index < nodes.size(); ++index) {
    for (const std::string& out : nodes[index].output) {
      if (out.empty()) continue;
      if (producer.count(out) || available.count(out))
        throw ModelLoadError(concat("value '", out, "' is produced twice (by ", nodes[index].op_type, " '",
                                    names[index], "' and an earlier node or initializer)"));
      producer[out] = index;
    }
  }
  std::vector<size_t> waiting(nodes.size(), 0);
  std::vector<std::vector<size_t>> users(nodes.size());
  for (size_t index = 0; index < nodes.size(); ++index) {
    for (const std::string& name : nodes[index].input) {
      if (name.empty() || available.count(name)) continue;
      auto it = producer.find(name);
      if (it == producer.end())
        throw ModelLoadError(concat(nodes[index].op_type, " '", names[index], "': input '", name,
                                    "' is neither an initializer, the graph input nor the output of a node (missing "
                                    "initializer?)"));
      ++waiting[index];
      users[it->second].push_back(index);
    }
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<size_t>> ready;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (waiting[i] == 0) ready.push(i);
  std::vector<size_t> order;
  while (!ready.empty()) {
    const size_t index = ready.top();
    ready.pop();
    order.push_back(index);
    for (size_t user : users[index])
      if (--waiting[user] == 0) ready.push(user);
  }
  if (order.size() != nodes.size()) {
    std::string stuck;
    for (size_t i = 0; i < nodes.size(); ++i)
      if (waiting[i] > 0) stuck += concat(stuck.empty() ? "" : ", ", nodes[i].op_type, " '", names[i], "'");
    throw ModelLoadError("the graph has a cycle through the nodes " + stuck);
  }
  return order;
}

std::set<size_t> needed_nodes(const std::vector<ox::Node>& nodes, const std::string& output) {
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < nodes.size(); ++i)
    for (const std::string& out : nodes[i].output)
      if (!out.empty()) producer[out] = i;  // the last one, as the Python dict comprehension keeps
  std::set<size_t> needed;
  std::set<std::string> seen;
  std::vector<std::string> stack{output};
  while (!stack.empty()) {
    const std::string name = stack.back();
    stack.pop_back();
    auto it = producer.find(name);
    if (seen.count(name) || it == producer.end()) continue;
    seen.insert(name);
    needed.insert(it->second);
    for (const std::string& in : nodes[it->second].input)
      if (!in.empty()) stack.push_back(in);
  }
  return needed;
}

const ox::Tensor* constant_node_value(const ox::Node& node) {
  if (node.op_type != "Constant" || node.output.size() != 1) return nullptr;
  for (const ox::Attribute& a : node.attribute)
    if (a.name == "value" && a.t) return &*a.t;
  return nullptr;
}

void check_declared_types(const ox::Graph& graph, const std::set<std::string>& data_values, const std::string& dtype) {
  int32_t expected = ox::kFloat;
  for (int32_t code : {ox::kFloat, ox::kDouble, ox::kFloat16, ox::kBfloat16})
    if (dtype == float_type_name(code)) expected = code;
  for (const ox::ValueInfo& value : graph.output) {
    if (value.type && value.type->kind == ox::TypeProto::Kind::tensor && value.type->elem_type == 0)
      throw ModelLoadError(concat("graph output '", value.name,
                                  "' is declared as a tensor without an element type (onnx.checker: elem_type is "
                                  "required)"));
  }
  std::vector<const ox::ValueInfo*> values;
  for (const ox::ValueInfo& v : graph.output) values.push_back(&v);
  for (const ox::ValueInfo& v : graph.value_info) values.push_back(&v);
  for (const ox::ValueInfo* value : values) {
    if (!data_values.count(value->name) || !value->type || value->type->kind != ox::TypeProto::Kind::tensor) continue;
    const int32_t code = value->type->elem_type;
    if (code == 0 || code == expected) continue;
    throw ModelLoadError(concat("value '", value->name, "' is declared with element type ", onnx_type_name(code),
                                ", but the graph computes it in ", ox::data_type_name(expected),
                                " (the input's type)"));
  }
}

std::vector<const Draft*> reachable(const std::vector<Draft*>& layers, const std::string& output) {
  std::map<std::string, const Draft*> by_output;
  for (const Draft* d : layers) by_output[d->spec.output] = d;
  std::set<std::string> keep;
  std::vector<std::string> stack{output};
  while (!stack.empty()) {
    const std::string name = stack.back();
    stack.pop_back();
    auto it = by_output.find(name);
    if (keep.count(name) || it == by_output.end()) continue;
    keep.insert(name);
    for (const std::string& in : it->second->spec.inputs) stack.push_back(in);
  }
  std::vector<const Draft*> out;
  for (const Draft* d : layers)
    if (keep.count(d->spec.output)) out.push_back(d);
  return out;
}

void convert_node(Context& ctx, const ox::Node& proto, const std::string& name, int64_t opset, size_t index) {
  const Node node(proto, name, opset, static_cast<int>(index));
  if (try_fold(ctx, node)) return;
  const Converter convert = lookup(node.op_type(), opset);
  if (!convert) {
    std::string supported;
    for (const std::string& op : cpp_supported_ops()) supported += (supported.empty() ? "" : ", ") + op;
    throw UnsupportedModelError(concat("unsupported op ", node.op_type(), " (node '", node.name(), "', opset ", opset,
                                       "); supported ops: ", supported));
  }
  convert(ctx, node);
}

ImportedModel convert_graph(const ox::Model& model, const ImportLimits& limits) {
  if (!model.graph) throw ModelLoadError("the model has no graph (empty or not an ONNX model?)");
  if (model.ir_version > schema_ir_version())
    throw UnsupportedModelError(concat("the model's IR version ", model.ir_version,
                                       " is newer than the installed onnx ", schema_onnx_version(), " knows (",
                                       schema_ir_version(), ")"));
  const int64_t opset = default_opset(model);
  const ox::Graph& graph = *model.graph;

  Context ctx;
  ctx.opset = opset;
  ctx.limits = limits;
  for (const ox::Tensor& t : graph.initializer) {
    for (int64_t d : t.dims)
      if (d < 0)
        throw ModelLoadError(concat("initializer '", t.name, "' has dims ", py_list(t.dims), " with a negative entry"));
    ctx.constants[t.name] = decode_tensor(t);
  }
  const DataInput input = data_input(graph, ctx.constants);
  const ox::ValueInfo& out_value = graph_output(graph);
  const std::vector<ox::Node>& nodes = graph.node;
  const std::vector<std::string> names = node_names(nodes);
  std::set<std::string> available{input.name};
  for (const auto& [key, value] : ctx.constants) available.insert(key);
  std::vector<size_t> order = topological_order(nodes, names, available);
  const std::set<size_t> needed = needed_nodes(nodes, out_value.name);
  order.erase(std::remove_if(order.begin(), order.end(), [&](size_t i) { return !needed.count(i); }), order.end());
  if (out_value.name != input.name && !ctx.constants.count(out_value.name) && needed.empty())
    throw ModelLoadError(concat("the graph output '", out_value.name, "' is not produced by any node"));
  std::map<std::string, std::vector<int64_t>> const_dims;
  for (const auto& [key, value] : ctx.constants) const_dims[key] = value.dims;
  for (const ox::Node& node : nodes)
    if (const ox::Tensor* value = constant_node_value(node)) const_dims[node.output[0]] = value->dims;
  for (size_t i : order) {
    check_node(nodes[i], names[i], opset);
    check_constant_inputs(nodes[i], names[i], opset, const_dims);
  }

  for (size_t i : order) {
    const ox::Node& n = nodes[i];
    if ((n.op_type == "Identity" || n.op_type == "Dropout") && !n.input.empty() && !n.output.empty())
      ctx.static_alias[n.output[0]] = n.input[0];
  }
  // The fusion patterns (fuse.cpp), found before anything is converted: their nodes but the last are not converted, and
  // the fused node takes the last one's place (also in the consumer counts).
  const Fusion fusion = find_fusions(graph, order, ctx.constants, out_value.name, names, opset);
  order.erase(std::remove_if(order.begin(), order.end(), [&](size_t i) { return fusion.absorbed.count(i) != 0; }),
              order.end());
  for (size_t i : order) {
    const std::string& op = nodes[i].op_type;
    if (op == "Identity" || op == "Dropout" || op == "Shape" || op == "Size") continue;
    auto fused = fusion.replacements.find(i);
    for (const std::string& name : fused != fusion.replacements.end() ? fused->second.proto.input : nodes[i].input)
      if (!name.empty()) ++ctx.consumers[ctx.static_resolve(name)];
  }
  ctx.graph_output = ctx.static_resolve(out_value.name);
  ++ctx.consumers[ctx.graph_output];
  ctx.input_name = input.name;
  for (const ox::ValueInfo& v : graph.input) {
    if (v.name != input.name || !v.type || v.type->shape.empty()) continue;
    const ox::Dimension& d = v.type->shape[0];
    ctx.batch_text = d.kind == ox::Dimension::Kind::value ? std::to_string(d.value)
                     : d.param.empty()                    ? std::string("'?'")
                                                          : "'" + d.param + "'";
    break;
  }
  ctx.graph_nodes = &nodes;
  ctx.shapes[input.name] = input.shape;
  ctx.used_names.insert(names.begin(), names.end());
  for (const ox::ValueInfo& v : graph.input) ctx.value_names.insert(v.name);
  for (const ox::ValueInfo& v : graph.output) ctx.value_names.insert(v.name);
  for (const ox::ValueInfo& v : graph.value_info) ctx.value_names.insert(v.name);
  for (const ox::Tensor& t : graph.initializer) ctx.value_names.insert(t.name);
  for (const ox::Node& n : nodes)
    for (const std::string& out : n.output) ctx.value_names.insert(out);

  for (size_t i : order) {
    auto fused = fusion.replacements.find(i);
    if (fused != fusion.replacements.end()) {
      const Node node(fused->second.proto, fused->second.proto.name, opset, static_cast<int>(i));
      fused->second.convert(ctx, node);
    } else {
      convert_node(ctx, nodes[i], names[i], opset, i);
    }
  }

  const std::string output = ctx.resolve(out_value.name);
  if (ctx.pending_of(out_value.name)) ctx.materialize(output);  // a constant affine map at the output: a layer
  if (ctx.is_batch_value(out_value.name))
    throw UnsupportedModelError(
        concat("the graph output '", out_value.name, "' is computed from the batch size alone (shape arithmetic)"));
  if (output == input.name || ctx.constants.count(output)) {
    const char* what = output == input.name ? "the input itself" : "a constant";
    throw UnsupportedModelError(concat("the model computes no layer: its output '", out_value.name, "' is ", what,
                                       " (after removing Identity/Dropout and evaluating constants at import)"));
  }
  auto flattened = ctx.batch_flattened.find(output);
  if (flattened != ctx.batch_flattened.end()) throw UnsupportedModelError(flattened->second);
  if (!ctx.producer(output))
    throw ModelLoadError(
        concat("the model computes no layer: its output '", out_value.name, "' is not a layer output"));
  const std::vector<const Draft*> layers = reachable(fold_pads_into_consumers(ctx, output), output);
  std::set<std::string> data_values{input.name};
  for (size_t i : order)
    for (const std::string& name : nodes[i].output)
      if (!name.empty() && ctx.is_data(name) && !ctx.is_constant(name)) data_values.insert(name);
  check_declared_types(graph, data_values, input.dtype);

  ImportedModel result;
  result.opset = opset;
  result.input_dtype = input.dtype;
  result.merged_batch_output = ctx.merged_batch.count(output) != 0;
  std::set<std::string> outputs;
  for (const Draft* d : layers)
    if (!ctx.merged_batch.count(d->spec.output)) outputs.insert(d->spec.output);
  for (const auto* values : {&graph.value_info, &graph.output})
    for (const ox::ValueInfo& value : *values) {
      if (!outputs.count(value.name)) continue;
      if (auto shape = declared_shape(value)) result.declared[value.name] = std::move(*shape);
    }
  ModelSpec& spec = result.spec;
  spec.input_name = input.name;
  spec.input_shape = input.sample;
  spec.output = output;
  for (const Draft* d : layers) spec.layers.push_back(std::move(const_cast<Draft*>(d)->spec));
  spec.max_activation = limits.max_activation;
  spec.max_total_activation = limits.max_total_activation;
  return result;
}

ImportedModel import_decoded(ox::Model model, const std::optional<std::string>& base_dir, const std::string& source,
                             const ImportLimits& limits) {
  if (model.graph) check_graph_size(model, limits);
  ox::load_external_data(model, base_dir, source);
  ImportedModel result = convert_graph(model, limits);
  result.source = source;
  return result;
}

/// The reader's message without its leading "<source>: ".
std::string reader_detail(const char* what, const std::string& source) {
  const std::string message = what;
  const std::string prefix = source + ": ";
  return message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message;
}

/// The bytes of the model file `path`; for a file it cannot open, the OSError text Python gives ("[Errno 2] No such
/// file or directory: 'x.onnx'").
std::string read_file(const std::string& path) {
  int error = 0;
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0)
    error = errno;
  else if (S_ISDIR(st.st_mode))
    error = EISDIR;
  std::ifstream in;
  if (!error) {
    in.open(path, std::ios::binary);
    if (!in) error = errno ? errno : EIO;
  }
  if (error)
    throw ModelLoadError(
        concat("cannot read ONNX model '", path, "': [Errno ", error, "] ", std::strerror(error), ": '", path, "'"));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

}  // namespace

ImportedModel import_onnx(const void* data, size_t size, const std::optional<std::string>& base_dir,
                          const ImportLimits& limits, const std::string& source) {
  ox::Model model;
  try {
    model = ox::decode_model(data, size, source);
  } catch (const ModelLoadError& e) {
    throw ModelLoadError("cannot parse the ONNX model bytes: " + reader_detail(e.what(), source));
  }
  return import_decoded(std::move(model), base_dir, source, limits);
}

ImportedModel import_onnx(const std::string& path, const ImportLimits& limits,
                          const std::optional<std::string>& base_dir) {
  // Decoded from a copy of the file, so that external data is read only after the graph checks (the reader's
  // read_model_file maps the file but reads external data at once).
  const std::string bytes = read_file(path);
  ox::Model model;
  try {
    model = ox::decode_model(bytes.data(), bytes.size(), path);
  } catch (const ModelLoadError& e) {
    throw ModelLoadError(
        concat("cannot load ONNX model '", path,
               "' (truncated, not an ONNX file, or missing external data): ", reader_detail(e.what(), path)));
  }
  const size_t slash = path.find_last_of('/');
  const std::string folder = base_dir                     ? *base_dir
                             : slash == std::string::npos ? "."
                             : slash == 0                 ? "/"
                                                          : path.substr(0, slash);
  try {
    if (model.graph) check_graph_size(model, limits);
  } catch (const ModelLoadError& e) {
    throw ModelLoadError(path + ": " + e.what());
  }
  ox::load_external_data(model, folder, path);
  try {
    ImportedModel result = convert_graph(model, limits);
    result.source = path;
    return result;
  } catch (const UnsupportedModelError& e) {
    throw UnsupportedModelError(path + ": " + e.what());
  } catch (const ModelLoadError& e) {
    throw ModelLoadError(path + ": " + e.what());
  }
}

ModelSpec load_onnx(const std::string& path, const ImportLimits& limits) {
  return import_onnx(path, limits).spec;
}

ModelSpec load_onnx(const void* data, size_t size, const std::optional<std::string>& base_dir,
                    const ImportLimits& limits) {
  return import_onnx(data, size, base_dir, limits).spec;
}

void check_declared_shapes(const ImportedModel& imported, const std::map<std::string, std::vector<int64_t>>& computed) {
  for (const auto& [name, shape] : imported.declared) {
    auto it = computed.find(name);
    if (it == computed.end() || shape.size() != it->second.size() + 1) continue;
    const std::vector<int64_t>& sample = it->second;
    bool differs = false;
    for (size_t i = 1; i < shape.size(); ++i)
      if (shape[i] && *shape[i] > 0 && *shape[i] != sample[i - 1]) differs = true;
    if (!differs) continue;
    std::string dims = "['N'", got = "['N'";
    for (size_t i = 1; i < shape.size(); ++i) dims += ", " + (shape[i] ? std::to_string(*shape[i]) : "'?'");
    for (int64_t d : sample) got += ", " + std::to_string(d);
    throw ModelLoadError(
        concat("value '", name, "' is declared with shape ", dims, "], but the graph computes ", got, "]"));
  }
}

std::vector<std::string> import_supported_ops() {
  return cpp_supported_ops();
}

ImportSchemaVersions import_schema_versions() {
  return {schema_max_opset(), schema_ir_version(), schema_onnx_version()};
}

}  // namespace dtd
