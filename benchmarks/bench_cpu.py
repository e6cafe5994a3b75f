"""CPU benchmark: fused dense forward and training steps vs numpy / PyTorch / JAX.

Usage: python benchmarks/bench_cpu.py [--suite dense|train|all] [--quick] [--out FILE]
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from graphc.benchmarking import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
