import sysconfig

from setuptools import setup

# One abi3 wheel serves every CPython >= 3.10; the free-threaded build has no
# limited API, so it gets a version-specific wheel.
options = {}
if not sysconfig.get_config_var("Py_GIL_DISABLED"):
    options["bdist_wheel"] = {"py_limited_api": "cp310"}

setup(cffi_modules=["csrc/build_ffi.py:ffi", "csrc/build_ffi.py:floor_ffi"], options=options)
