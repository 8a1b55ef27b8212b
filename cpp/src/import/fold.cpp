// Import-time evaluation of the shape arithmetic in front of a Reshape (python/dtd/onnx/fold.py), for the ops
// PyTorch writes for x.view(x.size(0), -1): Shape, Gather, Unsqueeze, Concat and Mul on integer tensors. Each value
// is evaluated twice, with the two sentinel batch sizes: a result that is the same both times is a constant, one that
// differs depends on the batch (Context::batch_values) and is accepted only as a Reshape target whose first entry is
// the batch size. Any other node the Python importer would evaluate at import is not ported yet.
#include <algorithm>

#include "ops.hpp"

namespace dtd::importer {

using detail::concat;

namespace {

constexpr int64_t kSentinels[2] = {13, 17};

std::vector<int64_t> norm_axes(const Node& node, const std::vector<int64_t>& axes, int64_t rank) {
  std::vector<int64_t> out;
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      throw ModelLoadError(concat(node.describe(), ": axis ", a, " is out of range for rank ", rank));
    out.push_back(((a % rank) + rank) % rank);
  }
  return out;
}

Constant integers(std::vector<int64_t> dims, std::vector<int64_t> values) {
  Constant c;
  c.dtype = ox::kInt64;
  c.dims = std::move(dims);
  c.integer = std::move(values);
  return c;
}

const Constant& arg(const Node& node, const std::vector<const Constant*>& args, size_t index) {
  if (index >= args.size() || !args[index])
    throw ModelLoadError(concat(node.describe(), ": input ", index, " is missing"));
  return *args[index];
}

/// Integer tensors only; anything else (float shape arithmetic, strings) is not ported yet.
const Constant& int_arg(const Node& node, const std::vector<const Constant*>& args, size_t index) {
  const Constant& c = arg(node, args, index);
  if (c.dtype != ox::kInt64 && c.dtype != ox::kInt32)
    not_ported(node, concat("evaluating it at import on a constant of element type ", c.dtype_name()));
  return c;
}

Constant eval_shape(const Node& node, const Dims& shape) {
  std::vector<int64_t> dims;
  for (const auto& d : shape) dims.push_back(*d);
  if (node.opset() >= 15) {
    const auto rank = static_cast<int64_t>(dims.size());
    auto clamp = [&](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
    const int64_t start = clamp(node.int_attr("start", 0)), end = clamp(node.int_attr("end", rank));
    dims = end > start ? std::vector<int64_t>(dims.begin() + start, dims.begin() + end) : std::vector<int64_t>{};
  }
  return integers({static_cast<int64_t>(dims.size())}, dims);
}

Constant eval_gather(const Node& node, const std::vector<const Constant*>& args) {
  const Constant& data = int_arg(node, args, 0);
  const Constant& indices = int_arg(node, args, 1);
  const auto rank = static_cast<int64_t>(data.dims.size());
  const int64_t axis = norm_axes(node, {node.int_attr("axis", 0)}, std::max<int64_t>(rank, 1))[0];
  if (rank == 0) not_ported(node, "a Gather from a scalar");
  const int64_t extent = data.dims[static_cast<size_t>(axis)];
  std::vector<int64_t> idx;
  for (int64_t i : indices.integer) {
    const int64_t j = i < 0 ? i + extent : i;
    if (j < 0 || j >= extent)
      throw ModelLoadError(concat(node.describe(), ": index out of range for an axis of length ", extent));
    idx.push_back(j);
  }
  int64_t outer = 1, inner = 1;
  for (int64_t a = 0; a < axis; ++a) outer *= data.dims[static_cast<size_t>(a)];
  for (int64_t a = axis + 1; a < rank; ++a) inner *= data.dims[static_cast<size_t>(a)];
  std::vector<int64_t> dims(data.dims.begin(), data.dims.begin() + axis);
  dims.insert(dims.end(), indices.dims.begin(), indices.dims.end());
  dims.insert(dims.end(), data.dims.begin() + axis + 1, data.dims.end());
  std::vector<int64_t> values;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j : idx)
      for (int64_t k = 0; k < inner; ++k)
        values.push_back(data.integer[static_cast<size_t>((o * extent + j) * inner + k)]);
  Constant out = integers(dims, values);
  out.dtype = data.dtype;
  return out;
}

Constant eval_unsqueeze(const Node& node, const std::vector<const Constant*>& args) {
  const Constant& data = arg(node, args, 0);
  std::optional<std::vector<int64_t>> axes;
  if (node.opset() < 13)
    axes = node.optional_ints("axes");
  else if (args.size() > 1 && args[1])
    axes = args[1]->as_ints(node.describe());
  if (!axes || axes->empty()) throw ModelLoadError(concat(node.describe(), ": the axes are missing"));
  std::vector<int64_t> sorted = norm_axes(node, *axes, static_cast<int64_t>(data.dims.size() + axes->size()));
  std::sort(sorted.begin(), sorted.end());
  Constant out = data;
  for (int64_t a : sorted) {
    if (a > static_cast<int64_t>(out.dims.size())) not_ported(node, "an Unsqueeze beyond the rank");
    out.dims.insert(out.dims.begin() + a, 1);
  }
  return out;
}

Constant eval_concat(const Node& node, const std::vector<const Constant*>& args) {
  std::vector<const Constant*> parts;
  for (const Constant* a : args)
    if (a) parts.push_back(a);
  if (parts.empty()) throw ModelLoadError(concat(node.describe(), ": no inputs"));
  if (!node.has("axis")) throw ModelLoadError(concat(node.describe(), ": the attribute 'axis' is required"));
  const int64_t axis =
      norm_axes(node, {node.int_attr("axis", 0)}, std::max<int64_t>(static_cast<int64_t>(parts[0]->dims.size()), 1))[0];
  for (const Constant* p : parts)
    if (p->dims.size() != 1 || p->dtype != ox::kInt64 || axis != 0)
      not_ported(node, "evaluating a Concat at import other than of 1-D int64 tensors");
  std::vector<int64_t> values;
  for (const Constant* p : parts) values.insert(values.end(), p->integer.begin(), p->integer.end());
  return integers({static_cast<int64_t>(values.size())}, values);
}

Constant eval_mul(const Node& node, const std::vector<const Constant*>& args) {
  if (node.opset() < 7) not_ported(node, "evaluating it at import with the legacy broadcast attribute (opset < 7)");
  const Constant& a = arg(node, args, 0);
  const Constant& b = arg(node, args, 1);
  if (a.dtype != ox::kInt64 || b.dtype != ox::kInt64 || a.dims != b.dims)
    not_ported(node, "evaluating a Mul at import other than of int64 tensors of one shape");
  Constant out = a;
  for (size_t i = 0; i < out.integer.size(); ++i) out.integer[i] = a.integer[i] * b.integer[i];
  return out;
}

bool same(const Constant& a, const Constant& b) {
  return a.dtype == b.dtype && a.dims == b.dims && a.integer == b.integer && a.real == b.real;
}

}  // namespace

bool try_fold(Context& ctx, const Node& node) {
  const std::string& op = node.op_type();
  bool evaluated = false;
  for (const FoldOp& f : fold_ops()) evaluated = evaluated || (op == f.op && node.opset() >= f.since);
  if (!evaluated) return false;
  // The inputs for the two sentinel batches; Shape reads its data input's shape only.
  std::vector<const Constant*> firsts, seconds;
  std::vector<Constant> shapes;  // Shape's results, kept alive here
  shapes.reserve(2);
  bool varying = false;
  for (size_t i = 0; i < node.inputs().size(); ++i) {
    const std::string& name = node.inputs()[i];
    if (name.empty()) {
      firsts.push_back(nullptr), seconds.push_back(nullptr);
      continue;
    }
    const std::string resolved = ctx.resolve(name);
    auto c = ctx.constants.find(resolved);
    if (c != ctx.constants.end()) {
      firsts.push_back(&c->second), seconds.push_back(&c->second);
      continue;
    }
    auto pair = ctx.batch_values.find(resolved);
    if (pair != ctx.batch_values.end()) {
      firsts.push_back(&pair->second.first), seconds.push_back(&pair->second.second);
      varying = true;
      continue;
    }
    if ((op != "Shape" && op != "Size") || i != 0 || !ctx.is_data(name)) return false;
    if (op == "Size") not_ported(node, "evaluating Size at import");
    if (ctx.merged_batch.count(resolved))
      throw UnsupportedModelError(concat(node.describe(), ": the shape of '", name,
                                         "' is taken after a Flatten with axis >= 2, whose leading ONNX axis mixes the "
                                         "batch with other axes; this is not supported"));
    auto sample = ctx.sample_shape(name);
    if (!sample) {
      auto shape = ctx.shape_of(name);
      throw UnsupportedModelError(concat(node.describe(), ": the shape of '", name,
                                         "' is not known at import (shape inference gives ",
                                         shape ? py_tuple(*shape) : std::string("None"),
                                         "); only shapes that depend on the batch size alone can be computed"));
    }
    for (int64_t batch : kSentinels) {
      Dims dims{batch};
      for (int64_t d : *sample) dims.push_back(d);
      shapes.push_back(eval_shape(node, dims));
    }
    firsts.push_back(&shapes[0]), seconds.push_back(&shapes[1]);
    varying = true;
  }
  // Decide the size from the shapes before anything is made (fold.py's output_elements and _check_folded_size).
  const int64_t limit = ctx.limits.max_folded_constant;
  auto check_size = [&](int64_t elements, const char* when) {
    if (elements > limit || ctx.folded_elements + elements > limit) {
      std::string what = concat("a constant of ", elements, " elements");
      if (elements <= limit) what += concat(", after ", ctx.folded_elements, " elements folded before it,");
      throw ModelLoadError(concat(node.describe(), ": evaluating it at import would ", when, " ", what,
                                  " more than the limit of ", limit,
                                  " (raise it with dtd.load(..., limits=dtd.Limits(max_folded_constant=...)))"));
    }
  };
  for (const auto* args : varying ? std::vector<const std::vector<const Constant*>*>{&firsts, &seconds}
                                  : std::vector<const std::vector<const Constant*>*>{&firsts}) {
    std::vector<const Constant*> present;
    for (const Constant* a : *args)
      if (a) present.push_back(a);
    std::optional<int64_t> elements;
    if (op == "Concat") {
      elements = 0;
      for (const Constant* a : present) *elements += a->numel();
    } else if (op == "Mul" && present.size() == 2 && present[0]->dims == present[1]->dims) {
      elements = present[0]->numel();
    } else if (op == "Gather" && present.size() == 2 && !present[0]->dims.empty()) {
      const auto rank = static_cast<int64_t>(present[0]->dims.size());
      const int64_t axis = node.int_attr("axis", 0);
      const int64_t extent =
          axis >= -rank && axis < rank ? present[0]->dims[static_cast<size_t>((axis + rank) % rank)] : 1;
      elements = (present[0]->numel() / std::max<int64_t>(extent, 1)) * present[1]->numel();
    }
    if (elements) check_size(*elements, "make");
  }
  auto evaluate = [&](const std::vector<const Constant*>& args) -> Constant {
    if (op == "Shape") return *args.at(0);
    if (op == "Gather") return eval_gather(node, args);
    if (op == "Unsqueeze") return eval_unsqueeze(node, args);
    if (op == "Concat") return eval_concat(node, args);
    if (op == "Mul") return eval_mul(node, args);
    not_ported(node, "evaluating it at import (constant folding)");
  };
  Constant first = evaluate(firsts);
  Constant second = varying ? evaluate(seconds) : first;
  const int64_t made = first.numel() + (varying ? second.numel() : 0);
  check_size(made, "have made");
  ctx.folded_elements += made;
  if (node.outputs().empty() || node.outputs()[0].empty()) return true;
  const std::string& out = node.outputs()[0];
  if (same(first, second))
    ctx.constants[out] = std::move(first);
  else
    ctx.batch_values[out] = {std::move(first), std::move(second)};
  return true;
}

std::vector<int64_t> reshape_target(const Context& ctx, const Node& node) {
  const auto& pair = ctx.batch_values.at(ctx.resolve(node.input(1)));
  const std::vector<int64_t> first = pair.first.as_ints(node.describe()), second = pair.second.as_ints(node.describe());
  if (first.size() != second.size())
    throw UnsupportedModelError(concat(node.describe(), ": the number of entries of the target shape '", node.input(1),
                                       "' depends on the batch size"));
  std::vector<int64_t> entries = first;
  for (size_t position = 0; position < first.size(); ++position) {
    if (position == 0 && first[0] == kSentinels[0] && second[0] == kSentinels[1]) {
      entries[0] = 0;
    } else if (first[position] != second[position]) {
      const std::string where =
          position == 0 ? std::string("first entry (the batch axis)") : concat("entry ", position);
      throw UnsupportedModelError(concat(node.describe(), ": the ", where, " of the target shape '", node.input(1),
                                         "' depends on the batch size in a way dtd cannot express (supported: the "
                                         "batch size itself as the first entry, batch-independent values elsewhere)"));
    }
  }
  return entries;
}

}  // namespace dtd::importer
