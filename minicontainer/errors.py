"""Typed errors and the exit codes the CLI turns them into.

Libraries never call sys.exit: they raise one of these with a message that
names the problem and a hint that says what to do. The CLI prints
`minict: <message> (<hint>)` as one line on stderr and exits with the class's
code. Each problem a user can act on has its own code, so scripts can tell
them apart; the table below is the whole list.

`minict run`/`start`/`exec` follow docker's convention instead: 125 when
minict itself failed, 126 when the command cannot be executed, 127 when it
is not found (see RunFailed and friends).
"""

from baselib.errors import UserError


class MinictError(UserError):
    """Base class of minict's errors: a problem the user can act on
    (message, hint, exit_code and one_line() come from baselib)."""


# ---- images: references, the store, archives (codes 10-29) ----------------

class BadReference(MinictError):
    exit_code = 10


class ImageNotFound(MinictError):
    exit_code = 11


class ArchiveError(MinictError):
    """Truncated, corrupt or unrecognised archive or image layout."""
    exit_code = 12


class DigestMismatch(MinictError):
    exit_code = 13


class UnsupportedMediaType(MinictError):
    exit_code = 14


class MissingBlob(MinictError):
    exit_code = 15


class UnsafeLayer(MinictError):
    """A layer tried to write outside its directory, or is otherwise hostile."""
    exit_code = 16


class LayerTooLarge(MinictError):
    """Uncompressed size over the cap: a decompression bomb, or a cap too low."""
    exit_code = 17


class RegistryUnreachable(MinictError):
    exit_code = 18


class AuthenticationRequired(MinictError):
    exit_code = 19


class ManifestUnknown(MinictError):
    """The registry has no such tag or digest."""
    exit_code = 20


class NoMatchingPlatform(MinictError):
    exit_code = 21


class DiskFull(MinictError):
    exit_code = 22


class ImageInUse(MinictError):
    exit_code = 23


class RegistryError(MinictError):
    """Any other error answer from a registry (5xx after retries, bad JSON...)."""
    exit_code = 24


class StoreCorrupt(MinictError):
    exit_code = 25


class InsecureRegistry(MinictError):
    """Plain HTTP asked of a registry that is neither loopback nor named insecure."""
    exit_code = 26


class BadArgument(MinictError):
    """A flag's value is malformed (sizes, volume specs, env files...)."""
    exit_code = 27


# ---- containers (codes 30-49) ----------------------------------------------

class ContainerNotFound(MinictError):
    exit_code = 30


class NameInUse(MinictError):
    exit_code = 31


class ContainerNotRunning(MinictError):
    exit_code = 32


class ContainerRunning(MinictError):
    exit_code = 33


class NotRoot(MinictError):
    exit_code = 34


# ---- cgroups (codes 40-49) -------------------------------------------------

class CgroupUnavailable(MinictError):
    """A limit was asked for but no usable cgroup v2 controller exists."""
    exit_code = 40


# ---- docker's run convention -------------------------------------------------

class RunFailed(MinictError):
    """minict could not start the container (docker: 125)."""
    exit_code = 125


class CommandNotExecutable(MinictError):
    exit_code = 126


class CommandNotFound(MinictError):
    exit_code = 127


# ---- containers, continued: run and the lifecycle ---------------------------

class UnknownUser(MinictError):
    """--user (or the image's User) names a user or group the image lacks."""
    exit_code = 35


class ContainerStateError(MinictError):
    """A container's record on disk is damaged or half-written."""
    exit_code = 36


# ---- GPUs: hpcshim's Plan in `minict run` (codes 50-59) ---------------------

class BadGpuPlan(MinictError):
    """--gpu-plan FILE cannot be read, is not a version-1 hpcshim Plan, or
    names files this host does not have."""
    exit_code = 50


class NoGpu(MinictError):
    """--gpu (or --gpu=nvidia / --gpu=rocm) asked for a GPU and the host has none."""
    exit_code = 51


class GpuDiscoveryFailed(MinictError):
    """hpcshim's selection or discovery refused: a CUDA_VISIBLE_DEVICES naming
    GPUs that are not here, a corrupt ld.so.cache, a bad CDI spec..."""
    exit_code = 52


# ---- networks (codes 60-69) -------------------------------------------------------

class NetworkNotFound(MinictError):
    """--network or `minict network inspect/rm` names no network there is."""
    exit_code = 60


class NetworkInUse(MinictError):
    """`minict network rm` of a network that containers are attached to."""
    exit_code = 61


class PortInUse(MinictError):
    """-p asks for a host port that something else already holds."""
    exit_code = 62


class AddressesExhausted(MinictError):
    """Every address of the network's subnet is handed out."""
    exit_code = 63


class NetworkSetupFailed(MinictError):
    """The kernel refused a step of a container's network (a bridge, a veth,
    a firewall rule): the message says which."""
    exit_code = 64


# ---- minict-oci: bundles and config.json (codes 80-89) -------------------------------------------

class BadConfig(MinictError):
    """A bundle's config.json breaks the OCI runtime spec (the field is named)."""
    exit_code = 80


class UnsupportedConfig(MinictError):
    """A valid config.json field that minict-oci does not do (refused, never ignored)."""
    exit_code = 81


class ContainerExists(MinictError):
    """minict-oci create: a container with this id is already in the state directory."""
    exit_code = 82


# ---- building images (minict build) -------------------------------------------------------------

class BadDockerfile(MinictError):
    """A Dockerfile minict cannot build: the message names the file and line."""
    exit_code = 70


class BuildFailed(MinictError):
    """A step of a build failed (a RUN's command exited non-zero, a COPY
    source is missing...): the message names the file, line and why."""
    exit_code = 71


# ---- exporting images (minict save) ---------------------------------------------------------

class OutputNotWritable(MinictError):
    """`minict save -o FILE`: FILE cannot be created (its directory is
    missing, it is a directory, or writing there is not allowed)."""
    exit_code = 72
