"""MSMD-layout data: readers, system unrolling, snippet pools, splits."""
