"""Typed errors and the exit codes the CLI turns them into.

hpcshim's libraries never call sys.exit: they raise one of these with a
message that names the problem and a hint that says what to do. `hpcshim`
prints `hpcshim: <message> (<hint>)` as one line on stderr and exits with the
class's code, so a batch script can tell the problems apart.

The codes are hpcshim's own (it does not import minicontainer: GPU nodes run
hpcshim without minict's compiled dependencies). Codes 125-127 are not used
here: `hpcshim exec` passes the workload's exit status through, and the
runtimes (apptainer, ch-run, minict) already use 125-127 for "runtime
failed", "cannot execute" and "not found".
"""

from baselib.errors import UserError


class HpcshimError(UserError):
    """Base class of hpcshim's errors: a problem the user can act on
    (message, hint, exit_code and one_line() come from baselib)."""


# ---- what the user asked for (codes 10-19) --------------------------------

class BadArgument(HpcshimError):
    """A flag value that cannot mean anything (a bad --bind, --env, --gpu)."""
    exit_code = 10


class BadSelection(HpcshimError):
    """NVIDIA_/CUDA_VISIBLE_DEVICES or a Slurm variable names GPUs that are not here."""
    exit_code = 11


class NoGpu(HpcshimError):
    """--gpu / --nv asked for a GPU and the host has none (or no driver loaded)."""
    exit_code = 12


# ---- the runtimes (codes 20-29) -------------------------------------------

class RuntimeNotFound(HpcshimError):
    """The chosen runtime (apptainer, singularity, ch-run, minict) is not on PATH."""
    exit_code = 20


class RuntimeUnsupported(HpcshimError):
    """The runtime is there but cannot do what the Plan needs (version too old...)."""
    exit_code = 21


class ImageNotPrepared(HpcshimError):
    """ch-run refuses binds to missing destinations and the image is read-only."""
    exit_code = 22


# ---- files hpcshim reads (codes 30-39) ------------------------------------

class CorruptFile(HpcshimError):
    """An ld.so.cache, ELF header, driver /proc file we cannot parse."""
    exit_code = 30


class BadPlan(HpcshimError):
    """A Plan JSON document that is not version 1 or misses a field."""
    exit_code = 31


class BadCdiSpec(HpcshimError):
    """A CDI spec that is not valid JSON or breaks the CDI schema rules."""
    exit_code = 32


class CdiDeviceNotFound(HpcshimError):
    """--device vendor.com/class=NAME names a device no CDI spec has."""
    exit_code = 33


class OutputError(HpcshimError):
    """An output file (cdi generate --output) cannot be written."""
    exit_code = 34


# ---- images hpcshim reads or converts (codes 40-49) ------------------------

class ImageNotFound(HpcshimError):
    """IMAGE names a file or directory that is not there."""
    exit_code = 40


class NotAnImage(HpcshimError):
    """A file that is neither an OCI archive nor a docker archive, or a layout
    or archive whose index, manifest or config cannot be read."""
    exit_code = 41


class AmbiguousImage(HpcshimError):
    """An archive or layout holds several images and IMAGE does not say which."""
    exit_code = 42


class UnknownImage(HpcshimError):
    """The name given is not in the archive, layout or minict store."""
    exit_code = 43


class ToolNotFound(HpcshimError):
    """A converter hpcshim needs for this image (minict, umoci) is not on PATH."""
    exit_code = 44


class ConversionFailed(HpcshimError):
    """umoci unpack, minict save or minict load failed (its message is kept)."""
    exit_code = 45


# ---- hpcshim pull (codes 50-59) ---------------------------------------------

class PullAuthFailed(HpcshimError):
    """The registry refused the credentials given, or asks for some and none were given."""
    exit_code = 50


class PullImageUnknown(HpcshimError):
    """The registry has no such repository or tag."""
    exit_code = 51


class PullFailed(HpcshimError):
    """The registry is unreachable or sent something wrong, or the runtime's own pull failed."""
    exit_code = 52


# ---- the image against this node's driver (codes 60-69) -----------------------

class UnmetImageRequirement(HpcshimError):
    """The image's NVIDIA_REQUIRE_CUDA (or another NVIDIA_REQUIRE_*) is known
    not to hold on this node's driver: `exec --gpu` refuses (hpcshim.requirements)."""
    exit_code = 60
