"""Build hook for the optional C extension; all other configuration is in pyproject.toml.

``augpipe._jpegregion`` decodes only the part of a JPEG a crop needs (libjpeg-turbo's
jpeg_crop_scanline / jpeg_skip_scanlines). It needs the libjpeg headers (Debian/Ubuntu:
``apt-get install libjpeg-dev``); without them the build of the extension fails, the install
goes on (``optional=True``) and augpipe decodes whole images instead.

``augpipe._jpegrestart`` adds restart markers to source JPEGs that ``augpipe pack`` keeps
(lossless: libjpeg's coefficient transcoding, as jpegtran). Same headers, same optional build:
without it kept JPEGs are stored as they are (``augpipe.format.restart.add_restarts``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            f"augpipe.{name}",
            sources=[f"augpipe/{name}.c"],
            depends=["augpipe/_jpegerr.h"],  # the shared libjpeg error manager
            libraries=["jpeg"],
            extra_compile_args=["-O2", "-std=c99"],
            optional=True,
        )
        for name in ("_jpegregion", "_jpegrestart")
    ]
)
