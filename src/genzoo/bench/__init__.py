"""The benchmark: the grid runner and the report it writes."""

from genzoo.bench.report import write_report
from genzoo.bench.runner import run_bench

__all__ = ["run_bench", "write_report"]
