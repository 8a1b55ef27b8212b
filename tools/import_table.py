"""The importer's node table (``NODES``, ``HARMLESS_ATTRIBUTES``, ``INPUT_FORMS``) as a module, wherever it lives.

The table is the source of cpp/src/import/schema_table.inc (tools/gen_import_schema.py). It is
``tools/import_schema.py`` once the Python importer is deleted, ``python/dtd/onnx/schema.py`` (``dtd.onnx.schema``)
while it exists; tools/gen_import_schema.py, tools/onnx_schema_table.py and tests/test_validation.py read it through
:func:`schema_module` so that they work with either.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
#: Where the table lives once python/dtd/onnx/ is gone.
TOOLS_TABLE = ROOT / "tools" / "import_schema.py"


def schema_source() -> str:
    """The table's file, relative to the repository root."""
    return "tools/import_schema.py" if TOOLS_TABLE.exists() else "python/dtd/onnx/schema.py"


def schema_module() -> ModuleType:
    """The module holding the node table: tools/import_schema.py if it exists, else ``dtd.onnx.schema``."""
    if not TOOLS_TABLE.exists():
        return importlib.import_module("dtd.onnx.schema")
    if "import_schema" in sys.modules:
        return sys.modules["import_schema"]
    spec = importlib.util.spec_from_file_location("import_schema", TOOLS_TABLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_schema"] = module
    spec.loader.exec_module(module)
    return module
