"""The HTTP session every registry request goes through.

`requests` does the HTTP; urllib3's Retry (which requests uses underneath)
retries what is worth retrying, with exponential backoff:

- connection failures (refused, reset, DNS hiccups): a few tries;
- a connection dropped before the answer arrived: a few tries (GET and
  HEAD only, which are safe to repeat);
- 429 Too Many Requests and 502/503/504 from an overloaded registry or
  proxy, honouring the Retry-After header when the server sends one.

A transfer cut off halfway through a blob is not covered by this (the
status line had already arrived); client.py resumes those with a Range
request.
"""

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

# Seconds to wait for a connection, and between two bytes of an answer.
TIMEOUT = (10, 60)
RETRY_STATUSES = (429, 500, 502, 503, 504)
USER_AGENT = "minict (minicontainer; +https://github.com/opencontainers/distribution-spec)"


def retry_policy() -> Retry:
    return Retry(
        total=None,            # the per-kind limits below decide
        connect=3,
        read=3,
        status=4,
        other=0,               # e.g. TLS errors: repeating will not help
        redirect=10,
        allowed_methods=frozenset({"GET", "HEAD"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=0.25,   # 0, 0.5, 1, 2 ... seconds between tries
        backoff_max=8,
        raise_on_status=False,  # after the last try, hand back the answer
        respect_retry_after_header=True,
    )


def make_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.trust_env = True  # honour HTTPS_PROXY / NO_PROXY like docker does
    adapter = HTTPAdapter(max_retries=retry_policy())
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
