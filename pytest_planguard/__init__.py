"""pytest-planguard: plan-regression gates and compile invariants for DataFusion + Delta.

Importing this package is cheap: it imports neither DataFusion nor ``reference_impl``.
"""

from __future__ import annotations

__version__ = "0.1.0"
