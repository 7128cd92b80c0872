# Only what pyproject.toml cannot say yet: the compiled parts.
#  - the cffi extension (the probing core);
#  - the trace agent: a plain C shared library preloaded into traced programs.
#    It uses no Python API; setuptools only compiles and places it
#    (splitlock_probe/_agent.abi3.so), so it is built at install time like the core.
from setuptools import Extension, setup

agent = Extension(
    "splitlock_probe._agent",
    sources=["csrc/agent/agent.c", "csrc/agent/breakpoints.c"],
    depends=["csrc/agent/agent.h", "csrc/agent/trapbuf.h", "csrc/agent/sitewire.h"],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-fvisibility=default"],
    libraries=["dl", "pthread"],
    py_limited_api=True,
)

setup(cffi_modules=["csrc/ffi_build.py:ffibuilder"], ext_modules=[agent])
