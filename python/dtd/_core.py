"""``dtd._core``: the C++ core, as the variant of it that :mod:`dtd._variant` picks for this CPU.

This file only stands in while it is imported: it puts the chosen extension module (``dtd._core_v2``, ``_core_v3``,
``_core_v4`` or ``_core_native``) in its place in ``sys.modules``, so that ``from dtd import _core`` and
``from dtd._core import ...`` give that module itself.
"""

from __future__ import annotations

import sys
from typing import Any

from ._variant import load

sys.modules[__name__] = load()


def __getattr__(name: str) -> Any:
    """Type checkers' view: every attribute comes from the compiled module (never called at run time)."""
    return getattr(sys.modules[__name__], name)
