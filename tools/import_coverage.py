"""Sum up a DTD_COMPARE_IMPORTERS log (tests/conftest.py): how many of the models the tests loaded the C++ importer
imports exactly as the Python one (same spec, or same error), how many it does not cover yet, and every mismatch.

Usage: DTD_COMPARE_IMPORTERS=build/import-compare.jsonl python -m pytest -q tests
       python tools/import_coverage.py build/import-compare.jsonl
"""

from __future__ import annotations

import collections
import json
import sys


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    with open(sys.argv[1], encoding="utf-8") as log:
        records = [json.loads(line) for line in log if line.strip()]
    counts = collections.Counter(record["result"] for record in records)
    tests = {record.get("test", "?").split(" ")[0] for record in records}
    print(
        f"{len(records)} imports in {len(tests)} tests: "
        + ", ".join(f"{k} {v}" for k, v in counts.most_common())
    )
    for record in records:
        if record["result"] in ("mismatch", "skipped"):
            print(f"\n{record['result']}: {record.get('test', '?')}\n  {record.get('detail', '')}")
    return 1 if counts["mismatch"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
