"""The one thing pyproject.toml cannot declare: the optional C extension of the hot loops
(src/ticket_nlp/_speedups.c). Without a compiler the install still succeeds and ticket_nlp runs
the same loops in Python (ticket_nlp.speedups)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ticket_nlp._speedups", ["src/ticket_nlp/_speedups.c"], optional=True,
                             extra_compile_args=["-O2"])])
