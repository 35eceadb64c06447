"""Build hook for the optional C extension; all other configuration is in pyproject.toml.

``augpipe._jpegregion`` decodes only the part of a JPEG a crop needs (libjpeg-turbo's
jpeg_crop_scanline / jpeg_skip_scanlines). It needs the libjpeg headers (Debian/Ubuntu:
``apt-get install libjpeg-dev``); without them the build of the extension fails, the install
goes on (``optional=True``) and augpipe decodes whole images instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "augpipe._jpegregion",
            sources=["augpipe/_jpegregion.c"],
            libraries=["jpeg"],
            extra_compile_args=["-O2", "-std=c99"],
            optional=True,
        )
    ]
)
