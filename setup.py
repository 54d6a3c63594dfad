"""Build the compiled core. Metadata lives in pyproject.toml.

Environment toggles:
  MPTCP_SANITIZE=1  build with AddressSanitizer + UBSan (gcc)
  MPTCP_ANNOTATE=1  write Cython's HTML annotation next to the source
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

cflags = ["-Wall", "-Wextra", "-Wno-unused-function", "-Wno-unused-parameter"]
ldflags = []
if os.environ.get("MPTCP_SANITIZE") == "1":
    cflags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
    ldflags += ["-fsanitize=address,undefined"]

ext = Extension(
    "mptcp._mptcp",
    ["src/_mptcp.pyx", "src/mptcp_bpf.c"],
    include_dirs=["include", "src"],
    extra_compile_args=cflags,
    extra_link_args=ldflags,
)

setup(
    ext_modules=cythonize(
        [ext],
        language_level=3,
        annotate=os.environ.get("MPTCP_ANNOTATE") == "1",
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )
)
