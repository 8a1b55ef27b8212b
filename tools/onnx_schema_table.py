"""Print the importer's node table (``NODES``) from the installed onnx package's operator schemas.

The importer must not depend on onnx's schemas at run time (the C++ importer carries the table, generated into
cpp/src/import/schema_table.inc by tools/gen_import_schema.py), so the table is generated once with this script and
pasted into its Python source (tools/import_schema.py, or python/dtd/onnx/schema.py while the Python importer exists:
see tools/import_table.py); ``tests/test_validation.py`` checks that the two agree. It prints the rows of the ops
already in the table, of those the C++ importer converts (``dtd._core._import_supported_ops()``) and of
:data:`EXTRA_OPS`. Run: ``python tools/onnx_schema_table.py``.
"""

from __future__ import annotations

import onnx
from onnx import defs

#: Ops the importer reads beyond those with a converter: the Erf of the erf-GELU fusion.
EXTRA_OPS = ("Erf",)
MIN_OPSET = 6


def table(ops: list[str]) -> dict[str, list[tuple[int, int, int, int, int, dict[str, str]]]]:
    history: dict[str, list[defs.OpSchema]] = {}
    for schema in defs.get_all_schemas_with_history():
        if schema.domain in ("", "ai.onnx") and schema.name in ops:
            history.setdefault(schema.name, []).append(schema)
    out = {}
    for op in sorted(ops):
        versions = sorted(history[op], key=lambda s: s.since_version)
        first = max((i for i, s in enumerate(versions) if s.since_version <= MIN_OPSET), default=0)
        rows = []
        for schema in versions[first:]:
            attrs = {
                name: onnx.AttributeProto.AttributeType.Name(a.type) for name, a in schema.attributes.items()
            }
            max_in = schema.max_input if schema.max_input < 2**31 - 1 else -1
            max_out = schema.max_output if schema.max_output < 2**31 - 1 else -1
            row = (
                schema.since_version,
                schema.min_input,
                max_in,
                schema.min_output,
                max_out,
                dict(sorted(attrs.items())),
            )
            if not rows or rows[-1][1:] != row[1:]:  # a version that changed only types: same row
                rows.append(row)
        out[op] = rows
    return out


def main() -> None:
    from import_table import schema_module

    from dtd import _core

    ops = {*schema_module().NODES, *_core._import_supported_ops(), *EXTRA_OPS}
    for op, rows in table(sorted(ops)).items():
        print(f"    {op!r}: (")
        for row in rows:
            print(f"        _V{row!r},")
        print("    ),")


if __name__ == "__main__":
    main()
