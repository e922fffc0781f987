"""The runtime tests' fixtures (a store with busybox, minict runners), shared here."""

from tests.runtime.conftest import fresh_mt, image_root, mt  # noqa: F401
