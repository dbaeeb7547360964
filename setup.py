"""Builds every fastgate/_native/*.pyx with Cython; generated C is never committed."""
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

native = Path("fastgate/_native")
extensions = [
    Extension(f"fastgate._native.{p.stem}", [str(p)], extra_compile_args=["-O3"])
    for p in sorted(native.glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    ),
)
