"""Renderers: lowered kernels -> C (CPU) or dialect kernel text (CUDA/OpenCL)."""
