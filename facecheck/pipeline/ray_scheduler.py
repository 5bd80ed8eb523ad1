"""A second scheduler for the same per-file analysis: Ray Data, on this machine or on a cluster.

`facecheck scan --engine ray` (or `Settings(engine="ray")`) hands the decoding, hashing and model
runs to Ray Data instead of local worker processes; everything else (the scan state and resume, the
partial results, grouping, results files and report) is `run.run_scan`'s, as for a local scan.
Ray Data reads the file list in windows of WINDOW entries and runs a pool of actors, each holding
one `analyze.Analyzer` (its ONNX sessions are created once per actor). On the CPU each actor also
decodes and hashes its files (`prepare.prepare`), so a decoded image never leaves the process that
decoded it; on CUDA the decoding runs in tasks on the CPUs and each actor asks for one GPU.

The driver (the process that runs `facecheck scan`) holds one window of paths and one batch of
results at a time, never the folder. Only this module imports Ray, and only when asked: it ships as
the optional `facecheck[ray]` extra.
"""
from __future__ import annotations

import itertools
import logging
import os
import pickle
import socket
import warnings
from pathlib import Path
from typing import Iterable, Iterator

from ..runtime import runs_on_cpu
from ..settings import WORKER_CHUNK, Settings, worker_count
from .analyze import Analyzer
from .prepare import Prepared, prepare
from .walk import NotRead

WINDOW = 50_000   # folder entries per Ray Data dataset: bounds the driver's memory for the path list


CONNECT_TIMEOUT = 5.0   # seconds to reach a cluster's port; Ray's own connect retries for minutes


def require_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise RuntimeError("--engine ray needs Ray Data: pip install 'facecheck[ray]'") from None
    return ray


def check_address(address: str, label: str = "ray_address") -> None:
    """Refuse a cluster address that cannot be joined, before any work: its form (ValueError: auto,
    HOST:PORT or ray://HOST[:PORT]), the Ray Client package for ray:// (RuntimeError), and whether
    anything answers at its port within CONNECT_TIMEOUT seconds (ConnectionError). 'auto' is looked up
    as Ray looks it up (RAY_ADDRESS, then the cluster last started on this machine)."""
    host_port = address.removeprefix("ray://")
    client = host_port != address
    if client and ":" not in host_port:
        host_port += ":10001"   # Ray Client's default port
    if address == "auto":
        host_port = _auto_address()
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
        raise ValueError(f"{label} must be auto, HOST:PORT (a cluster's GCS port, 6379 by default) or "
                         f"ray://HOST:PORT (Ray Client, 10001), not {address!r}")
    if client:
        try:
            import grpc  # noqa: F401 - Ray Client's transport, from the ray[client] extra
        except ImportError:
            raise RuntimeError(f"{label} {address} goes through Ray Client, which needs ray[client]: "
                               "pip install 'facecheck[ray]'") from None
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        reason = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e) or type(e).__name__)
        raise ConnectionError(f"cannot reach a Ray cluster at {address}"
                              + (f" ({host_port})" if address == "auto" else "")
                              + f": {reason} within {CONNECT_TIMEOUT:g} s") from None


def _auto_address() -> str:
    """The HOST:PORT that ray.init(address="auto") would join, or ConnectionError when there is none."""
    require_ray()
    try:
        from ray._private.services import canonicalize_bootstrap_address_or_die
    except ImportError:   # another Ray version: let ray.init find it (and say so) itself
        return "localhost:6379"
    try:
        return canonicalize_bootstrap_address_or_die("auto")
    except ConnectionError:
        raise ConnectionError("--address auto: no running Ray cluster found (start one with `ray start --head`, "
                              "or give HOST:PORT)") from None


def connect(settings: Settings):
    """Join the cluster at settings.ray_address ('auto', 'ray://host:10001', ...), or start a local
    one on this machine with settings.workers CPUs (default, and at most: every core). A Ray already
    initialised in this process is used as it is. A local Ray started here lives as long as this
    Python process. A cluster that cannot be joined raises ConnectionError (ValueError, RuntimeError:
    see check_address) with one line."""
    ray = require_ray()
    if not ray.is_initialized():
        options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                       configure_logging=True)
        if settings.ray_address:
            check_address(settings.ray_address, "--address")
            try:
                ray.init(address=settings.ray_address, **options)
            except Exception as e:   # noqa: BLE001 - Ray raises many kinds; the user needs one line
                message = " ".join(str(e).split()) or type(e).__name__
                raise ConnectionError(f"cannot join the Ray cluster at {settings.ray_address}: {message}") from None
        else:
            ray.init(num_cpus=worker_count(settings) or os.cpu_count() or 1, **options)
    logging.getLogger("ray.data").setLevel(logging.ERROR)   # per-dataset INFO/WARNING lines on every window
    ray.data.DataContext.get_current().enable_progress_bars = False   # facecheck shows its own progress
    return ray


def _encode_source(source, rel: str) -> dict:
    """A (source, relative path) pair as an Arrow-friendly row: paths as bytes (file names need not be
    UTF-8), a NotRead as its reason."""
    if isinstance(source, NotRead):
        return {"path": b"", "rel": rel, "not_read": source.reason}
    return {"path": os.fsencode(source), "rel": rel, "not_read": ""}


def _decode_source(path: bytes, not_read: str):
    return NotRead(not_read) if not_read else Path(os.fsdecode(path))


def _prepare_batch(batch: dict, settings: Settings) -> list[Prepared]:
    """Decode and hash each file of a batch of encoded sources (prepare.prepare, as local workers do)."""
    return [prepare(_decode_source(p, n), rel, settings)
            for p, rel, n in zip(batch["path"], batch["rel"], batch["not_read"])]


def _pickled(items: list[Prepared]) -> dict:
    return {"prepared": [pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL) for item in items]}


def _prepare_files(batch: dict, settings: Settings) -> dict:
    """Ray Data task (CUDA scans): decode and hash each file of the batch."""
    return _pickled(_prepare_batch(batch, settings))


class _AnalyzeFiles:
    """Ray Data actor: one Analyzer (ONNX sessions made once), run on each batch of prepared files.
    `settings` is bound as a class attribute by `_actor_class`, so the actor takes no constructor
    arguments."""
    settings: Settings

    def __init__(self):
        cpu = runs_on_cpu(self.settings.device)
        self.analyzer = Analyzer(self.settings, intra_op_threads=1 if cpu else None)

    def __call__(self, batch: dict) -> dict:
        return self.analyzed([pickle.loads(blob) for blob in batch["prepared"]])

    def analyzed(self, items: list[Prepared]) -> dict:
        self.analyzer.analyze(items)
        for item in items:
            item.image, item.analyzed = None, True   # the driver needs the result, not the pixels
        return _pickled(items)


class _PrepareAndAnalyzeFiles(_AnalyzeFiles):
    """Ray Data actor for CPU scans: decodes and hashes its files too, so a decoded image never leaves
    the process that decoded it (one step, where Ray Data would otherwise fuse two)."""

    def __call__(self, batch: dict) -> dict:
        return self.analyzed(_prepare_batch(batch, self.settings))


def _actor_class(settings: Settings, base: type) -> type:
    return type("FacecheckAnalyzer", (base,), {"settings": settings})


def prepared_stream(sources: Iterable[tuple[object, str]], settings: Settings) -> Iterator[Prepared]:
    """Prepared and analysed files, as local_scheduler.prepared_stream yields them, computed by Ray Data.
    Results come in completion order (the scan state is keyed by path)."""
    ray = connect(settings)
    cpu = runs_on_cpu(settings.device)
    resources = ray.cluster_resources()
    # one actor per CPU (per GPU on CUDA) of the cluster, or --workers of them, never more than it has
    have = max(1, int(resources.get("CPU" if cpu else "GPU", 1)))
    actors = min(settings.workers or have, have)
    # max_restarts 0: an actor that dies (out of memory, a decoder crash) stops the scan, which a rerun
    # resumes, instead of Ray Data's default of restarting it and retrying the same files forever; it
    # also keeps Ray from logging an error line about restarting actors on every scan.
    actor_options = {"num_cpus": 1, "max_restarts": 0} if cpu else {"num_gpus": 1, "max_restarts": 0}
    sources = iter(sources)
    while window := [_encode_source(source, rel) for source, rel in itertools.islice(sources, WINDOW)]:
        dataset = ray.data.from_items(window)
        if not cpu:   # on CUDA the CPUs decode in tasks, and the actors hold the GPUs
            dataset = dataset.map_batches(_prepare_files, fn_kwargs={"settings": settings}, batch_size=WORKER_CHUNK)
        with warnings.catch_warnings():   # max_restarts has no named parameter of map_batches (yet)
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            dataset = dataset.map_batches(_actor_class(settings, _PrepareAndAnalyzeFiles if cpu else _AnalyzeFiles),
                                          batch_size=WORKER_CHUNK,
                                          compute=ray.data.ActorPoolStrategy(size=min(actors, len(window))),
                                          **actor_options)
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for blob in batch["prepared"]:
                yield pickle.loads(blob)


def check_settings(settings: Settings, name=str) -> None:
    """A cluster to join (--address) must answer before any work: its form, Ray Client for ray://, and a
    TCP connect within CONNECT_TIMEOUT (see check_address)."""
    if settings.ray_address is not None:
        check_address(settings.ray_address, name("ray_address"))
