"""`minict build`: an image from a Dockerfile.

    dockerfile.py   the file read into instructions (file and line kept for messages)
    words.py        $VARIABLES and quotes in instructions, as docker expands them
    context.py      the build context, .dockerignore, COPY sources and their digest
    builder.py      the steps: FROM, config changes, RUN in a container, COPY...
    workbench.py    COPY/ADD/WORKDIR written into the stage's overlay root
    layer.py        an overlay upper directory turned into an OCI layer tar
    cache.py        the build cache, keyed by parent state + instruction (+ file contents)
"""
