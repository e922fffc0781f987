"""`minict build`: the Dockerfile's steps, one after the other.

    parse          dockerfile.py: instructions, each with its file and line
    stages         split at FROM; --target stops after the named one
    each step      cache.py: a hit takes the image state the step gave before;
                   a miss runs it:
                     ENV, LABEL, CMD...  change the image config only
                     RUN                 a real minict container of the stage so
                                         far (lifecycle.run: same namespaces,
                                         security defaults and --explain)
                     COPY, ADD, WORKDIR  written into the stage's overlay root
                                         (workbench.py)
                   and a changed filesystem becomes a layer (layer.py) in the
                   image store
    commit         the last stage's config and manifest, named by each -t

Nothing is named until every step has worked: a failed build leaves no
image (the store collects the layers it made) and no container (each RUN's
container is removed whatever happens).
"""

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from baselib.inroot import resolve_in_root

from .. import syscalls as sc
from ..errors import BadDockerfile, BuildFailed, MinictError
from ..image import mediatypes as mt, resolve
from ..fsutil import sha256_bytes
from ..image.importer import DEFAULT_PATH
from ..image.platforms import host_platform
from ..image.reference import parse as parse_reference
from ..image.store import Image, Store
from ..runtime import lifecycle, state
from ..runtime.create import container_from
from ..runtime.request import RunRequest
from ..runtime.users import resolve_user
from . import cache as build_cache
from .context import Context
from .dockerfile import Instruction, parse
from .layer import write_layer
from .words import expand, split_words
from .workbench import Owner, Workbench, is_tar_archive

DEFAULT_SHELL = ["/bin/sh", "-c"]
CONFIG_ONLY = {"ENV", "ARG", "USER", "CMD", "ENTRYPOINT", "LABEL", "EXPOSE", "VOLUME", "SHELL",
               "STOPSIGNAL", "MAINTAINER"}


@dataclass
class BuildOptions:
    context: Path
    dockerfile: Path | None = None         # default: CONTEXT/Dockerfile
    tags: tuple = ()
    build_args: dict = field(default_factory=dict)
    no_cache: bool = False
    target: str | None = None
    network: str = "bridge"                # docker's default for build, too


@dataclass
class CopyPlan:
    sources: list[Path]
    dest: str                               # absolute; ending in / means "into"
    digest: str                             # for the cache key
    from_layers: list[str] | None = None    # COPY --from: that stage's layers


@dataclass
class Stage:
    """The image a stage has made so far."""
    name: str | None
    config: dict                           # the whole OCI image config
    layers: list                           # the manifest's layer descriptors
    key: str                               # the cache chain (cache.py)
    args: dict = field(default_factory=dict)   # ARGs declared in this stage

    @property
    def run_config(self) -> dict:
        return self.config.setdefault("config", {})

    @property
    def diff_ids(self) -> list[str]:
        return self.config["rootfs"]["diff_ids"]

    def env(self) -> dict:
        return dict(e.split("=", 1) for e in self.run_config.get("Env") or [] if "=" in e)

    def variables(self) -> dict:
        """What $NAME means in this stage's instructions: ARGs, then ENV wins."""
        return {**self.args, **self.env()}

    def shell(self) -> list[str]:
        return list(self.run_config.get("Shell") or DEFAULT_SHELL)


class Builder:
    def __init__(self, config, options: BuildOptions, out=None):
        self.config = config
        self.options = options
        self.kernel = sc.Kernel(sc.Narrator(config.explain))
        self.store = Store(config.root)
        self.cache = build_cache.BuildCache(config.root)
        self.context = Context(options.context)
        self.epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or 0)
        self.out = out or (lambda line: print(line, flush=True))
        self.used_args: set[str] = set()
        self.stages: list[Stage] = []

    # ---- the whole build ----------------------------------------------------------------

    def build(self) -> Image:
        path = self.options.dockerfile or self.context.dir / "Dockerfile"
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise BadDockerfile(f"cannot read {path}: {exc.strerror}",
                                "give the Dockerfile with -f, or put one in the context") from None
        dockerfile = parse(text, str(path))
        self.escape = dockerfile.escape
        global_args, stages = self._split(dockerfile.instructions, str(path))
        # ARGs before the first FROM: usable in FROM lines, and in a stage
        # that declares them again (ARG NAME).
        self.global_values = {}
        for arg in global_args:
            self.global_values.update(self._arg_value(arg, self.global_values))
        # The builder's own mount namespace: the overlay roots of COPY steps
        # are never visible on the host, and go if the builder dies.
        self.kernel.unshare(sc.CLONE_NEWNS, "A mount namespace for the build's own mounts")
        self.kernel.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, None,
                          "Make every mount private, so nothing the build mounts reaches the host")
        total = sum(len(s) for s in stages)
        step = 0
        with self.store.ingest() as ingest:
            self.ingest = ingest
            for stage_steps in stages:
                stage = None
                for instruction in stage_steps:
                    step += 1
                    self.out(f"STEP {step}/{total}: {instruction.text}")
                    if instruction.keyword == "FROM":
                        stage = self._from(instruction)
                        self.stages.append(stage)
                    else:
                        self._step(stage, instruction)
            unused = set(self.options.build_args) - self.used_args
            if unused:
                self.out(f"[warning] build arguments not used by any ARG: {', '.join(sorted(unused))}")
            return self._commit(self.stages[-1])

    def _split(self, instructions: list[Instruction], path: str):
        """ARGs before the first FROM, and the stages up to --target."""
        global_args = []
        while instructions and instructions[0].keyword == "ARG":
            global_args.append(instructions.pop(0))
        if not instructions:
            raise BadDockerfile(f"{path}: no FROM instruction", "start the Dockerfile with FROM")
        if instructions[0].keyword != "FROM":
            first = instructions[0]
            raise BadDockerfile(f"{first.where}{first.keyword} before any FROM",
                                "start every stage with FROM; only ARG may come before the first")
        stages = []
        for instruction in instructions:
            if instruction.keyword == "FROM":
                stages.append([])
            stages[-1].append(instruction)
        if self.options.target is not None:
            names = [_stage_name(s[0]) for s in stages]
            if self.options.target not in names:
                raise BadDockerfile(f"{path}: no stage named {self.options.target!r} (--target)",
                                    "name a stage with FROM IMAGE AS NAME")
            stages = stages[:names.index(self.options.target) + 1]
        return global_args, stages

    # ---- FROM -----------------------------------------------------------------------------

    def _from(self, instruction: Instruction) -> Stage:
        words = split_words(instruction.args, self.global_values, self.escape, instruction.where)
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
            raise BadDockerfile(f"{instruction.where}FROM takes IMAGE [AS NAME]",
                                "e.g. FROM busybox AS base")
        base = words[0]
        name = words[2].lower() if len(words) == 3 else None
        if base == "scratch":
            platform = host_platform()
            config = {"architecture": platform.architecture, "os": platform.os,
                      "config": {"Env": [DEFAULT_PATH]}, "rootfs": {"type": "layers", "diff_ids": []},
                      "history": []}
            return Stage(name, config, [], build_cache.chain("scratch"))
        earlier = self._stage_named(base)
        if earlier is not None:
            return Stage(name, json.loads(json.dumps(earlier.config)), list(earlier.layers),
                         earlier.key)
        image = self._base_image(base, instruction, "FROM")
        config = json.loads(self.store.read_blob(image.config_digest))
        layers = [dict(d) for d in image.manifest["layers"]]
        return Stage(name, config, layers, build_cache.chain(image.id))

    def _base_image(self, ref: str, instruction: Instruction, shown: str) -> Image:
        """An image from the store, or pulled, as `docker build` does too."""
        try:
            return resolve(self.config, ref)
        except MinictError as exc:
            space = "" if shown.endswith("=") else " "
            raise type(exc)(f"{instruction.where}{shown}{space}{ref}: {exc.message}",
                            exc.hint) from None

    def _stage_named(self, name: str) -> Stage | None:
        if name.isdigit() and int(name) < len(self.stages):
            return self.stages[int(name)]
        return next((s for s in self.stages if s.name == name.lower()), None)

    # ---- every other step -----------------------------------------------------------------

    def _step(self, stage: Stage, instruction: Instruction) -> None:
        keyword = instruction.keyword
        if keyword == "ARG":
            stage.args.update(self._arg_value(instruction, self.global_values))
            return       # not in the image; RUN steps see it through their cache key
        variables = stage.variables()
        parts = []
        plan = None
        if keyword in ("COPY", "ADD"):
            plan = self._copy_plan(stage, instruction, variables)
            parts.append(plan.digest)
        if keyword == "RUN":
            parts.append(json.dumps(sorted(stage.args.items())))
        shown = expand(instruction.text, variables, self.escape, instruction.where) \
            if keyword not in ("RUN", "CMD", "ENTRYPOINT") else instruction.text
        key = build_cache.chain(stage.key, shown, *parts)
        entry = None if self.options.no_cache else self.cache.get(key, self._usable)
        if entry is not None:
            stage.config, stage.layers = entry["config"], entry["layers"]
            self.out(" ---> Using cache")
        else:
            if keyword in CONFIG_ONLY:
                self._config_step(stage, instruction, variables)
                self._history(stage, shown, empty=True)
            elif keyword == "RUN":
                self._run(stage, instruction)
                self._history(stage, f"RUN {' '.join(self._run_argv(stage, instruction))}")
            elif keyword == "WORKDIR":
                self._workdir(stage, instruction, variables)
            else:
                self._copy(stage, instruction, plan)
                self._history(stage, shown)
            self.cache.put(key, {"config": stage.config, "layers": stage.layers})
        stage.key = key

    def _usable(self, entry: dict) -> bool:
        diff_ids = entry["config"]["rootfs"]["diff_ids"]
        return (all(self.ingest.layer_present(d) for d in diff_ids)
                and all(self.ingest.has_blob(layer["digest"]) for layer in entry["layers"]))

    def _arg_value(self, instruction: Instruction, defaults: dict) -> dict:
        name, eq, default = instruction.args.partition("=")
        name = name.strip()
        if not name or " " in name:
            raise BadDockerfile(f"{instruction.where}ARG takes NAME or NAME=default",
                                "one ARG per line")
        if name in self.options.build_args:
            self.used_args.add(name)
            return {name: self.options.build_args[name]}
        if eq:
            return {name: split_words(default, {}, self.escape, instruction.where)[0]
                    if default.strip() else ""}
        return {name: defaults[name]} if name in defaults else {}

    # ---- config-only instructions -------------------------------------------------------------

    def _config_step(self, stage: Stage, instruction: Instruction, variables: dict) -> None:
        keyword, cfg, where = instruction.keyword, stage.run_config, instruction.where

        def words() -> list[str]:
            return split_words(instruction.args, variables, self.escape, where)

        if keyword == "ENV":
            for key, value in _pairs(words(), where, "ENV"):
                cfg["Env"] = [e for e in cfg.get("Env") or [] if e.split("=", 1)[0] != key]
                cfg["Env"].append(f"{key}={value}")
        elif keyword == "LABEL":
            cfg.setdefault("Labels", {}).update(dict(_pairs(words(), where, "LABEL")))
        elif keyword == "MAINTAINER":
            stage.config["author"] = instruction.args
        elif keyword in ("CMD", "ENTRYPOINT"):
            argv = instruction.json if instruction.json is not None \
                else stage.shell() + [instruction.args]
            cfg["Cmd" if keyword == "CMD" else "Entrypoint"] = argv
            if keyword == "ENTRYPOINT":
                cfg.pop("Cmd", None)      # docker: a new ENTRYPOINT resets CMD of the base
        elif keyword == "USER":
            cfg["User"] = " ".join(words())
        elif keyword == "EXPOSE":
            for port in words():
                cfg.setdefault("ExposedPorts", {})[port if "/" in port else f"{port}/tcp"] = {}
        elif keyword == "VOLUME":
            for volume in instruction.json if instruction.json is not None else words():
                cfg.setdefault("Volumes", {})[volume] = {}
        elif keyword == "SHELL":
            cfg["Shell"] = instruction.json
        elif keyword == "STOPSIGNAL":
            cfg["StopSignal"] = " ".join(words())

    def _history(self, stage: Stage, created_by: str, empty: bool = False) -> None:
        entry = {"created": self._now(), "created_by": created_by, "comment": "minict build"}
        if empty:
            entry["empty_layer"] = True
        stage.config.setdefault("history", []).append(entry)

    def _now(self) -> str:
        when = time.gmtime(self.epoch) if "SOURCE_DATE_EPOCH" in os.environ else time.gmtime()
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", when)

    # ---- RUN ------------------------------------------------------------------------------

    def _run_argv(self, stage: Stage, instruction: Instruction) -> list[str]:
        if instruction.json is not None:
            return instruction.json
        return stage.shell() + [instruction.args]

    def _run(self, stage: Stage, instruction: Instruction) -> None:
        argv = self._run_argv(stage, instruction)
        image = self._stage_image(stage)
        request = RunRequest(image=f"{instruction.path}:{instruction.line}", command=tuple(argv),
                             entrypoint="", env=tuple(f"{k}={v}" for k, v in stage.args.items()),
                             network=self.options.network)
        engine, container_config = container_from(
            image, request, state.Layout.of(self.config).containers, host_env={})
        code, container_id = None, engine.id
        try:
            code, _ = lifecycle.run(self.config, engine, container_config, self.kernel)
            if code != 0:
                raise BuildFailed(f"{instruction.where}RUN {instruction.args.strip()} "
                                  f"exited with status {code}",
                                  "fix the command; the build stopped here and made no image")
            upper = state.Layout.of(self.config).containers / container_id / "upper"
            self._add_layer(stage, upper, instruction)
        finally:
            self._remove_container(container_id)

    def _remove_container(self, container_id: str) -> None:
        try:
            lifecycle.remove(self.config, container_id, force=True)
        except MinictError:
            pass        # never made (the run failed before its record existed)

    def _stage_image(self, stage: Stage) -> Image:
        """The stage so far, as the runtime takes an image (nothing named in the store)."""
        config_bytes = json.dumps(stage.config, sort_keys=True).encode()
        return Image(manifest_digest="", config_digest=sha256_bytes(config_bytes),
                     manifest={}, config=stage.config, diff_ids=list(stage.diff_ids),
                     layer_dirs=[self.store.layer_fs(d) for d in stage.diff_ids])

    # ---- layers ---------------------------------------------------------------------------

    def _add_layer(self, stage: Stage, upper: Path, instruction: Instruction) -> None:
        tar_path = self.ingest.temp_path("build-layer-")
        try:
            write_layer(upper, tar_path, self.epoch,
                        [self.store.layer_fs(d) for d in stage.diff_ids])
            with open(tar_path, "rb") as blob:
                layer = self.ingest.add_layer(blob, blob_digest=None, diff_id=None,
                                              media_type=None,
                                              what=f"the layer of {instruction.where.rstrip(': ')}")
        finally:
            tar_path.unlink(missing_ok=True)
        stage.diff_ids.append(layer.diff_id)
        stage.layers.append({"mediaType": mt.OCI_LAYER_GZIP, "digest": layer.blob_digest,
                             "size": layer.blob_size})

    def _workbench(self, stage: Stage) -> Workbench:
        return Workbench(self.kernel, [str(self.store.layer_fs(d)) for d in stage.diff_ids],
                         self._temp_dir("step-"))

    def _temp_dir(self, prefix: str) -> Path:
        """A directory in the store's work area (removed with it when the build ends)."""
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.ingest.work))

    # ---- WORKDIR ----------------------------------------------------------------------------

    def _workdir(self, stage: Stage, instruction: Instruction, variables: dict) -> None:
        path = " ".join(split_words(instruction.args, variables, self.escape, instruction.where))
        if not path.startswith("/"):
            path = os.path.join(stage.run_config.get("WorkingDir") or "/", path)
        path = os.path.normpath(path)
        stage.run_config["WorkingDir"] = path
        with self._workbench(stage) as bench:
            if bench.is_dir(path):
                self._history(stage, f"WORKDIR {path}", empty=True)
                return
            os.close(bench.make_dirs(path, self._owner(stage, stage.run_config.get("User"))))
            self._add_layer(stage, bench.upper, instruction)
        self._history(stage, f"WORKDIR {path}")

    def _owner(self, stage: Stage, user: str | None) -> Owner:
        account = resolve_user(user or "", [self.store.layer_fs(d) for d in stage.diff_ids])
        return Owner(account.uid, account.gid)

    # ---- COPY and ADD ------------------------------------------------------------------------

    def _copy_plan(self, stage: Stage, instruction: Instruction, variables: dict) -> CopyPlan:
        """What a COPY or ADD copies, where to, and its cache digest."""
        if instruction.json is not None:
            words = [expand(w, variables, self.escape, instruction.where) for w in instruction.json]
        else:
            words = split_words(instruction.args, variables, self.escape, instruction.where)
        if len(words) < 2:
            raise BadDockerfile(f"{instruction.where}{instruction.keyword} needs a source and a "
                                f"destination", f"e.g. {instruction.keyword} app.py /app/")
        *sources, dest = words
        for source in sources:
            if "://" in source:
                raise BadDockerfile(f"{instruction.where}{instruction.keyword} of a URL "
                                    f"({source}) is not supported: minict build does not download",
                                    "download it in a RUN step (curl, wget), or into the context")
        if not dest.startswith("/"):
            dest = os.path.join(stage.run_config.get("WorkingDir") or "/", dest) + \
                ("/" if dest.endswith("/") else "")
        origin = instruction.flags.get("from")
        if origin is None:
            paths = [p for s in sources for p in self.context.sources(s, instruction.where)]
            plan = CopyPlan(paths, dest, self.context.digest_of(paths))
        else:
            # Another stage (or image): its files are looked up in its own
            # mounted root when the step runs; its cache key stands for them.
            earlier = self._stage_named(origin)
            if earlier is not None:
                diff_ids, key = earlier.diff_ids, earlier.key
            else:
                image = self._base_image(origin, instruction, "COPY --from=")
                diff_ids, key = image.diff_ids, image.id
            plan = CopyPlan([Path(s) for s in sources], dest, build_cache.chain(key, *sources),
                            [str(self.store.layer_fs(d)) for d in diff_ids])
        if len(plan.sources) > 1 and not dest.endswith("/"):
            raise BadDockerfile(f"{instruction.where}{instruction.keyword} of several sources "
                                f"needs a destination ending in /", f"write {dest}/")
        return plan

    def _copy(self, stage: Stage, instruction: Instruction, plan: CopyPlan) -> None:
        owner = self._owner(stage, instruction.flags["chown"]) if "chown" in instruction.flags \
            else Owner()
        with self._workbench(stage) as bench:
            if plan.from_layers is not None:
                self._copy_from_stage(bench, instruction, plan, owner)
            else:
                self._copy_from_context(bench, instruction, plan, owner)
            self._add_layer(stage, bench.upper, instruction)

    def _copy_from_context(self, bench, instruction, plan, owner) -> None:
        into_dir = plan.dest.endswith("/") or bench.is_dir(plan.dest)
        for source in plan.sources:
            if source.is_dir() and not source.is_symlink():
                # A directory's contents are copied, not the directory itself.
                self._copy_contents(bench, self.context.entries(source), plan.dest, owner,
                                    self.context.entries)
            elif instruction.keyword == "ADD" and is_tar_archive(source):
                bench.extract_tar(source, plan.dest, owner)
            else:
                self._copy_one(bench, source, plan.dest, into_dir, owner)

    def _copy_from_stage(self, bench, instruction, plan, owner) -> None:
        # The other stage's root, mounted beside this one; paths in it are
        # resolved inside it, as the workbench does for writes.
        keep = owner if "chown" in instruction.flags else None   # else: owners as they are there
        with Workbench(self.kernel, plan.from_layers, self._temp_dir("from-")) as other:
            into_dir = plan.dest.endswith("/") or bench.is_dir(plan.dest)
            for source in plan.sources:
                found = resolve_in_root(str(other.merged), str(source))
                if found is None:
                    raise BuildFailed(f"{instruction.where}COPY --from={instruction.flags['from']}:"
                                      f" {source} does not exist there", "check the path")
                real = other.merged / found.lstrip("/")
                if real.is_dir():
                    self._copy_contents(bench, sorted(real.iterdir()), plan.dest, keep)
                else:
                    self._copy_one(bench, real, plan.dest, into_dir, keep)

    @staticmethod
    def _copy_contents(bench, children, dest: str, owner, lister=None) -> None:
        fd = bench.make_dirs(dest, Owner())
        try:
            for child in children:
                bench.copy(child, fd, child.name, owner, lister)
        finally:
            os.close(fd)

    @staticmethod
    def _copy_one(bench, source: Path, dest: str, into_dir: bool, owner) -> None:
        parent, name = (dest, source.name) if into_dir else os.path.split(dest.rstrip("/"))
        fd = bench.make_dirs(parent, Owner())
        try:
            bench.copy(source, fd, name, owner)
        finally:
            os.close(fd)

    # ---- the image ------------------------------------------------------------------------

    def _commit(self, stage: Stage) -> Image:
        # The image was made when its last step was (docker's rule): a build
        # that is all cache hits gives the very same image, id included.
        history = stage.config.get("history") or [{}]
        config = dict(stage.config, created=history[-1].get("created") or self._now())
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = self.ingest.add_blob_bytes(config_bytes)
        manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                    "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest,
                               "size": len(config_bytes)},
                    "layers": stage.layers}
        names = [parse_reference(t) for t in self.options.tags]
        return self.ingest.commit_image(json.dumps(manifest, sort_keys=True).encode(), names)


def _stage_name(instruction: Instruction) -> str | None:
    words = instruction.args.split()
    return words[2].lower() if len(words) == 3 and words[1].upper() == "AS" else None


def _pairs(words: list[str], where: str, keyword: str) -> list[tuple[str, str]]:
    """ENV/LABEL: KEY=VALUE words, or the old one-pair form `ENV KEY some value`."""
    if words and "=" not in words[0]:
        if len(words) < 2:
            raise BadDockerfile(f"{where}{keyword} {words[0]} has no value", "write KEY=VALUE")
        return [(words[0], " ".join(words[1:]))]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise BadDockerfile(f"{where}{keyword} expects KEY=VALUE, got {word!r}",
                                "write KEY=VALUE (quote values with spaces)")
        pairs.append((key, value))
    return pairs

