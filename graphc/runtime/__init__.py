"""Backends' runtimes: the numpy interpreter, the cffi CPU loader, CuPy and pyopencl."""
