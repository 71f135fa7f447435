"""Bounds on what a sandbox, an image or a volume can make the host read, write or keep.

Everything on the far side of the trust boundary is hostile (docs/SECURITY.md), so
every read from it, and every resource it can make the host spend, has a bound here:
a documented default, overridable by an environment variable read on each call
(so tests and long-lived services can change it). `get(name)` returns the bound in
its unit (bytes, seconds or a count); hitting one is always a clear error naming it.
"""

from __future__ import annotations

import os
from typing import Dict, NamedTuple

from .exception import InvalidError


class Bound(NamedTuple):
    variable: str
    default: int
    meaning: str


_MiB = 1 << 20
_GiB = 1 << 30

BOUNDS: Dict[str, Bound] = {
    "entrypoint_output": Bound(
        "PYSANDBOX_ENTRYPOINT_OUTPUT_MAX", 64 * _MiB,
        "bytes of a sandbox entrypoint's stdout, and again of its stderr, kept on the host (at least 65536); "
        "older output is dropped"),
    "runner_log": Bound(
        "PYSANDBOX_RUNNER_LOG_MAX", 1 * _MiB,
        "bytes of what the gVisor runner (runsc) and sandbox-init write to a sandbox's supervisor.log (at least "
        "65536); the rest is dropped"),
    "writable_root": Bound(
        "PYSANDBOX_WRITABLE_ROOT_MAX", 4 * _GiB,
        "bytes a host-image sandbox created without ephemeral_disk= can write to its root filesystem, /tmp "
        "included (a memory-backed tmpfs, no larger than the memory limit); 0: no bound, the root is a "
        "directory on the state directory's disk"),
    "tmp": Bound(
        "PYSANDBOX_TMP_MAX", 1 * _GiB,
        "bytes of /tmp, a tmpfs, in an image sandbox and under the gVisor runner (no larger than the memory limit)"),
    "dev_shm": Bound(
        "PYSANDBOX_DEV_SHM_MAX", 256 * _MiB,
        "bytes of /dev/shm, a tmpfs (no larger than the memory limit)"),
    "ptys": Bound(
        "PYSANDBOX_PTYS_MAX", 256,
        "terminals a sandbox's devpts holds at once (1 to 1048576): exec(pty=True)'s, create(pty=True)'s and any "
        "its code opens, of the host's kernel.pty.max less kernel.pty.reserve that all containers share; under "
        "gVisor, whose terminals are its own, none"),
    "file_read": Bound(
        "PYSANDBOX_FILE_READ_MAX", 1 * _GiB,
        "bytes one sb.filesystem.read_bytes() or read_text() returns; a larger file is "
        "SandboxFilesystemFileTooLargeError"),
    "file_copy": Bound(
        "PYSANDBOX_FILE_COPY_MAX", 16 * _GiB,
        "bytes one copy out of a sandbox or a volume writes on the host (sb.filesystem.copy_to_local, "
        "Volume.read_file, copy_files, `pysandbox volume get`); a larger file is refused"),
    "init_reply_s": Bound(
        "PYSANDBOX_INIT_REPLY_TIMEOUT", 60,
        "seconds the host waits for sandbox-init's one reply to a request (an exec's start, a file operation) "
        "before the call fails with TimeoutError: init answers at once, unless sandbox code holds it up (e.g. "
        "stops an exec's process before it runs)"),
    "file_relay_s": Bound(
        "PYSANDBOX_FILE_RELAY_TIMEOUT", 60,
        "seconds one read, write or seek of a file open in a gVisor sandbox (sb.open, sb.filesystem) may wait for "
        "the sandbox's init, which relays it, before it fails with TimeoutError"),
    # Image.from_registry: what a registry (any registry a caller names) can make the host download
    # and unpack. Layer sizes are checked against the manifest before anything is downloaded, and
    # every blob is read to exactly its declared size.
    "registry_manifest_bytes": Bound(
        "PYSANDBOX_REGISTRY_MANIFEST_MAX", 4 * _MiB,
        "bytes of a manifest, an index or a token answer read from a registry (the distribution spec's 4 MiB)"),
    "registry_config_bytes": Bound(
        "PYSANDBOX_REGISTRY_CONFIG_MAX", 8 * _MiB, "bytes of an image config read from a registry"),
    "registry_layer_bytes": Bound(
        "PYSANDBOX_REGISTRY_LAYER_MAX", 8 * _GiB, "bytes of one layer as a registry serves it (compressed)"),
    "registry_layers": Bound("PYSANDBOX_REGISTRY_LAYERS_MAX", 256, "layers in an image pulled from a registry"),
    "registry_retries": Bound(
        "PYSANDBOX_REGISTRY_RETRIES", 5,
        "retries of one registry request after a transient failure (connection reset, HTTP 429 or 5xx, a blob "
        "cut short), with exponential backoff from 0.25 s up to PYSANDBOX_REGISTRY_BACKOFF_MAX"),
    "registry_backoff_max_s": Bound(
        "PYSANDBOX_REGISTRY_BACKOFF_MAX", 8,
        "seconds of the longest wait before a retry of a registry request: the backoff's cap, and how much of "
        "a Retry-After is honoured (0: retry at once)"),
    "credential_helper_output": Bound(
        "PYSANDBOX_CREDENTIAL_HELPER_OUTPUT_MAX", 64 * 1024,
        "bytes read from a Docker credential helper (docker-credential-<name> get) answering for a registry"),
    "credential_helper_s": Bound(
        "PYSANDBOX_CREDENTIAL_HELPER_TIMEOUT", 30,
        "seconds a Docker credential helper may take to answer before it is killed"),
    "layer_unpacked_bytes": Bound(
        "PYSANDBOX_LAYER_UNPACKED_MAX", 16 * _GiB,
        "bytes one registry layer may unpack to (each file at the size its tar header declares, so a "
        "sparse file counts at its full size)"),
    "layer_entries": Bound(
        "PYSANDBOX_LAYER_ENTRIES_MAX", 500_000,
        "entries (files, directories, links, whiteouts) one registry layer may unpack"),
    "image_unpacked_bytes": Bound(
        "PYSANDBOX_IMAGE_UNPACKED_MAX", 32 * _GiB,
        "bytes all layers of a registry image may unpack to together (and may take as downloaded)"),
    "image_entries": Bound(
        "PYSANDBOX_IMAGE_ENTRIES_MAX", 1_000_000, "entries all layers of a registry image may unpack together"),
    "unpack_memory_bytes": Bound(
        "PYSANDBOX_UNPACK_MEMORY_MAX", 1 * _GiB,
        "address space of the process unpacking registry layers (tar headers such as pax records are "
        "read into memory)"),
    "snapshot_directory_bytes": Bound(
        "PYSANDBOX_SNAPSHOT_DIRECTORY_MAX", 16 * _GiB,
        "bytes of file data snapshot_directory() may copy out of a sandbox"),
    "snapshot_directory_entries": Bound(
        "PYSANDBOX_SNAPSHOT_DIRECTORY_ENTRIES_MAX", 500_000,
        "entries (files, directories, links) snapshot_directory() may copy out of a sandbox"),
    "exec_unread_output": Bound(
        "PYSANDBOX_EXEC_UNREAD_OUTPUT_MAX", 64 * _MiB,
        "bytes of one exec's stdout (or stderr) kept in memory while nobody reads it: wait() or poll() "
        "before reading, or reading the other stream; past it the rest of that stream is dropped"),
    "cli_supervisor_log": Bound(
        "PYSANDBOX_CLI_LOG_MAX", 64 * 1024,
        "bytes of a sandbox's supervisor.log (which init inside the sandbox writes too) that `pysandbox logs` "
        "shows, from its end"),
    # The DNS filter of a sandbox with an outbound_domain_allowlist (native/supervisor/dnsfilter.c).
    "domain_allowlist": Bound(
        "PYSANDBOX_DOMAIN_ALLOWLIST_MAX", 256, "names in one outbound_domain_allowlist"),
    "dns_queries_per_s": Bound(
        "PYSANDBOX_DNS_QPS", 200, "DNS queries a sandbox's filter answers per second (more are dropped)"),
    "dns_addresses": Bound(
        "PYSANDBOX_DNS_ADDRESSES_MAX", 4096,
        "addresses a sandbox's allowed names may resolve to at once (allowed until their TTL ends); an answer "
        "that needs more is SERVFAIL"),
    "host_addresses": Bound(
        "PYSANDBOX_HOST_ADDRESSES_MAX", 4096,
        "the host's own addresses (and local prefixes) a sandbox's default network refuses at most; on a host "
        "with more, no sandbox with the default network starts (supervisor.log says so), and a running one keeps "
        "refusing the addresses it did"),
    "dns_min_ttl_s": Bound(
        "PYSANDBOX_DNS_MIN_TTL", 10,
        "seconds an address an allowed name resolved to stays reachable at least, whatever its TTL (1 or more)"),
    "dns_max_ttl_s": Bound(
        "PYSANDBOX_DNS_MAX_TTL", 3600, "seconds an address an allowed name resolved to stays reachable at most "
        "without another lookup (connections already open are kept)"),
    "gc_interval_s": Bound(
        "PYSANDBOX_GC_INTERVAL", 60,
        "seconds between the automatic collections that creates start in the background, per state directory "
        "(0: never; `pysandbox gc` collects on demand)"),
    "finished_retention_s": Bound(
        "PYSANDBOX_FINISHED_RETENTION", 600,
        "seconds the automatic collection keeps a finished sandbox's directory (its result and output, for "
        "from_id and `pysandbox ls --all`) and any other litter; `pysandbox gc` removes finished sandboxes at once"),
}


def get(name: str) -> int:
    """The bound called `name`: its environment variable if set (a non-negative integer), else its default."""
    bound = BOUNDS[name]
    raw = os.environ.get(bound.variable)
    if raw is None or raw == "":
        return bound.default
    if not raw.isdigit():
        raise InvalidError(f"{bound.variable}={raw!r} must be a non-negative integer ({bound.meaning}).")
    return int(raw)


def variable(name: str) -> str:
    """The environment variable that changes the bound `name`, for error messages."""
    return BOUNDS[name].variable
