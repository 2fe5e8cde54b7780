"""Build aloop's asyncio event loop against an installed libaloop (pkg-config aloop; --define-prefix,
so a libaloop installed under DESTDIR works with PKG_CONFIG_PATH pointing there):
    pip install --no-build-isolation ./python
The autotools build (configure --with-python; make; make install) builds the same module."""

import subprocess

from setuptools import Extension, setup


def pkg_config(*args):
    return subprocess.run(["pkg-config", "--define-prefix", *args, "aloop"], check=True, capture_output=True,
                          text=True).stdout.split()


ext = Extension(
    "aloop._aloop",
    sources=["aloop/_aloop.c"],
    include_dirs=[f[2:] for f in pkg_config("--cflags-only-I")],
    library_dirs=[f[2:] for f in pkg_config("--libs-only-L")],
    runtime_library_dirs=[f[2:] for f in pkg_config("--libs-only-L")],
    libraries=[f[2:] for f in pkg_config("--libs-only-l")],
)

setup(
    name="aloop",
    version=pkg_config("--modversion")[0],
    description="asyncio's event loop on aloop (io_uring, libev, select)",
    packages=["aloop"],
    ext_modules=[ext],
    python_requires=">=3.11",
)
