"""Talking to image registries: the OCI distribution API, client side.

One module per concern, the way Charliecloud's ch-image splits it:

    endpoint.py     which host serves a registry's API, and whether plain
                    HTTP may be used for it (loopback, or named insecure)
    transport.py    the HTTP session: connection reuse, retries with
                    backoff for transient errors, timeouts
    auth.py         WWW-Authenticate challenges, Basic auth and the bearer
                    token flow (distribution's token authentication spec)
    credentials.py  `minict login/logout`'s credential file, and docker's
                    ~/.docker/config.json read as a fallback
    client.py       the API calls a pull and a push need: /v2/, manifests,
                    blobs, uploads

The specification is the OCI Distribution Specification v1.1
(github.com/opencontainers/distribution-spec, spec.md); section names are
cited in each docstring. `minicontainer.image.pull` drives these to put an image
into the store, and `minicontainer.image.push` to send one from it.
"""

from .client import RegistryClient

__all__ = ["RegistryClient"]
