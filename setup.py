# Only what pyproject.toml cannot say yet: the cffi extension.
from setuptools import setup

setup(cffi_modules=["csrc/ffi_build.py:ffibuilder"])
