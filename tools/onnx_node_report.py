#!/usr/bin/env python3
"""Per-op status of ONNX's backend node tests under dtd (a reconciliation aid; tests/test_onnx_node.py
is the check).

For every node test whose ops dtd claims, prints whether it passes, is refused as the committed table
tests/data/onnx_node_expected.json expects, or disagrees with the table (a refusal the table does not
list, a listed test that loads, a ModelLoadError, a numerical mismatch). ``--all`` also loads the tests of
ops dtd does not claim (each must raise UnsupportedModelError). ``--suggest`` prints table lines for the
refusals the table lacks, with the reason whose ``match`` fits the message (check them by hand).

Usage: python tools/onnx_node_report.py [--all] [--suggest] [--verbose]   (fetch first: tools/onnx_node_tests.py)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import onnx_node  # the harness lives with the tests
from dtd import _core


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="also the tests of ops dtd does not claim")
    parser.add_argument("--suggest", action="store_true", help="print table lines for unlisted refusals")
    parser.add_argument("--verbose", action="store_true", help="print every disagreement's message")
    args = parser.parse_args()
    if not onnx_node.available():
        print(f"no node tests in {onnx_node.NODE_DIR}; run tools/onnx_node_tests.py first", file=sys.stderr)
        return 2
    warnings.simplefilter("ignore")
    reasons, table = onnx_node.load_expected()
    supported = set(_core._import_supported_ops())
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    problems: list[str] = []
    suggestions: dict[str, str] = {}
    for test in onnx_node.discover():
        is_claimed = onnx_node.claimed(test, supported)
        if not is_claimed and not args.all:
            continue
        outcome = onnx_node.run(test)
        op = "+".join(sorted(test.ops)) if is_claimed else "(not claimed)"
        listed = table.get(test.name)
        if not is_claimed:
            status = "refused" if outcome.status == "unsupported" else "FAIL"
        elif outcome.status == "pass":
            status = "pass" if listed is None else "LISTED BUT PASSES"
        elif outcome.status == "unsupported" and listed is not None:
            ok = re.search(reasons[listed]["match"], outcome.message)
            status = "out of scope" if ok else "REFUSED FOR ANOTHER REASON"
        elif outcome.status == "unsupported":
            status = "UNLISTED REFUSAL"
            key = next((k for k, r in reasons.items() if re.search(r["match"], outcome.message)), "?")
            suggestions[test.name] = key
        else:
            status = "FAIL"
        counts[op][status] += 1
        if status.isupper() or status == "FAIL":
            problems.append(f"{test.name} [{op}] {status}: {outcome.message}")
    statuses = ["pass", "out of scope", "refused"]
    statuses += sorted({s for c in counts.values() for s in c} - set(statuses))
    width = max((len(op) for op in counts), default=10)
    print(f"{'ops':<{width}}  " + "  ".join(statuses))
    for op in sorted(counts):
        print(f"{op:<{width}}  " + "  ".join(f"{counts[op].get(s, 0):>{len(s)}}" for s in statuses))
    totals = {s: sum(c.get(s, 0) for c in counts.values()) for s in statuses}
    print(f"{'total':<{width}}  " + "  ".join(f"{totals[s]:>{len(s)}}" for s in statuses))
    if args.verbose:
        print("\n".join(problems))
    if args.suggest:
        for name in sorted(suggestions):
            print(f'    "{name}": {json.dumps(suggestions[name])},')
    return 0


if __name__ == "__main__":
    sys.exit(main())
