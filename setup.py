"""
Set-up shim; the metadata lives in setup.cfg.

The one thing setup.cfg cannot say: C{twisted/plugins/rpctransport_echo.py},
the C{twistd} plugin, is installed into Twisted's C{twisted.plugins} package
(it has no C{__init__.py} of its own, so C{find:} does not see it).
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(exclude=["docs", "docs.*"]) + ["twisted.plugins"],
    package_data={
        "twisted.plugins": ["rpctransport_echo.py"],
        "rpctransport": ["py.typed"],
        # The interop tests and the benchmark build these C peers (and the
        # header they share) against libtirpc when they run.
        "rpctransport._tirpc": ["*.c", "*.h"],
    },
)
