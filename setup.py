"""Build the optional C accelerator; everything else is in pyproject.toml.

If no compiler is available the extension is skipped and modelguard uses its pure-Python
decoder, which accepts and refuses exactly the same bodies (only slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "modelguard._strictjson",
            sources=["modelguard/_strictjson.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
