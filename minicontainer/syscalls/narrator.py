"""Narration: the `[explain] <sentence>: <call>` lines of --explain."""

import json
import os
import time
from contextlib import contextmanager


class Narrator:
    """Prints `[explain] <sentence>: <call>` lines to a file descriptor.

    The fd is a private duplicate of stderr taken at start (and marked
    close-on-exec), so the narration keeps going to the user's terminal
    even after the container's stdio has been pointed at a pty or a log,
    and never leaks into the container's command.
    """

    def __init__(self, enabled: bool, fd: int | None = None):
        self.enabled = enabled
        self.fd = fd
        # Which half of minict run speaks: "engine" (image + flags -> the
        # bundle, the network) or "runtime" (bundle -> process); None: say nothing.
        self.speaker: str | None = None
        if enabled and fd is None:
            self.fd = os.dup(2)
            os.set_inheritable(self.fd, False)

    @contextmanager
    def speaking(self, speaker: str):
        """Narrate as `speaker` inside the with block (then as before)."""
        before, self.speaker = self.speaker, speaker
        try:
            yield
        finally:
            self.speaker = before

    def say(self, sentence: str, call: str | None = None) -> None:
        if not self.enabled:
            return
        if self.speaker:
            sentence = f"{self.speaker}: {sentence}"
        line = f"[explain] {sentence}: {call}\n" if call else f"[explain] {sentence}\n"
        try:
            os.write(self.fd, line.encode(errors="replace"))
        except OSError:
            pass  # narration must never be the reason a container fails

    def close(self) -> None:
        if self.enabled and self.fd is not None and self.fd > 2:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = None
        self.enabled = False


class JsonNarrator(Narrator):
    """The narration as JSON lines, {"level": "debug", "msg", "time"}: what
    conmon and containerd's shim read from a runtime's --log when they ask
    for --log-format json (minict-oci --debug)."""

    def say(self, sentence: str, call: str | None = None) -> None:
        if not self.enabled:
            return
        line = json.dumps({"level": "debug", "msg": f"{sentence}: {call}" if call else sentence,
                           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        try:
            os.write(self.fd, (line + "\n").encode(errors="replace"))
        except OSError:
            pass


class CallbackNarrator(Narrator):
    """Narration handed to a callable `say(sentence, call)`: the cgroups
    package narrates through such a callable (a Kernel's `explain`), and a
    Kernel it makes for the few calls it needs (kill) speaks the same way."""

    def __init__(self, say):
        super().__init__(False)
        self._say = say

    def say(self, sentence: str, call: str | None = None) -> None:
        if self._say is not None:
            self._say(sentence, call)
