"""Check the release artifacts tools/build-wheels made: python3 tools/check_wheels.py DIST [AGAIN].

Each wheel: tagged py3-none-<manylinux and musllinux of one architecture>, carrying the
native helpers (setup.BINARIES) as executable, static, stripped ELF binaries of that architecture, py.typed,
the LICENSE and the package's version. The sdist: the C sources, setup.py and LICENSE.
With AGAIN (a second build of a wheel): the same wheel, byte for byte.
"""

import hashlib
import re
import struct
import sys
import tarfile
import zipfile
from pathlib import Path

HELPERS = ("sandbox-init", "sandbox-supervisor", "sandbox-probe", "sandbox-rmtree", "sandbox-mount", "sandbox-untree")
ELF_MACHINES = {"x86_64": 62, "aarch64": 183}
PT_INTERP, PT_DYNAMIC, SHT_SYMTAB = 3, 2, 2
ROOT = Path(__file__).resolve().parent.parent


def version() -> str:
    return re.search(r'__version__ = "([^"]+)"', (ROOT / "pysandbox" / "_version.py").read_text()).group(1)


def elf_problems(data: bytes, arch: str) -> list:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return ["not a 64-bit little-endian ELF file"]
    machine, = struct.unpack_from("<H", data, 18)
    phoff, shoff = struct.unpack_from("<QQ", data, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 54)
    problems = [] if machine == ELF_MACHINES[arch] else [f"machine {machine}, not {arch}"]
    types = {struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)}
    if types & {PT_INTERP, PT_DYNAMIC}:
        problems.append("dynamically linked")
    if any(struct.unpack_from("<I", data, shoff + i * shentsize + 4)[0] == SHT_SYMTAB for i in range(shnum)):
        problems.append("not stripped (has a symbol table)")
    return problems


def check_wheel(path: Path) -> list:
    match = re.fullmatch(r"pysandbox_modal-(.+)-py3-none-(.+)\.whl", path.name)
    if not match:
        return [f"{path.name}: not a py3-none-<platform> wheel of pysandbox-modal"]
    wheel_version, platforms = match.groups()
    tags = platforms.split(".")
    arches = {arch for arch in ELF_MACHINES if all(tag.endswith(f"_{arch}") for tag in tags)}
    problems = [] if wheel_version == version() else [f"version {wheel_version}, the package says {version()}"]
    if len(arches) != 1:
        return problems + [f"platform tags {platforms}: not one supported architecture"]
    arch = arches.pop()
    if not any(t.startswith("manylinux") for t in tags) or not any(t.startswith("musllinux") for t in tags):
        problems.append(f"platform tags {platforms}: want manylinux and musllinux (the helpers are static)")
    with zipfile.ZipFile(path) as wheel:
        names = set(wheel.namelist())
        for helper in HELPERS:
            name = f"pysandbox/_native/{helper}"
            if name not in names:
                problems.append(f"{name} missing")
                continue
            if not (wheel.getinfo(name).external_attr >> 16) & 0o100:
                problems.append(f"{name} not executable")
            problems += [f"{name}: {p}" for p in elf_problems(wheel.read(name), arch)]
        for wanted in ("pysandbox/py.typed",):
            if wanted not in names:
                problems.append(f"{wanted} missing")
        if not any(n.endswith("LICENSE") and ".dist-info/" in n for n in names):
            problems.append("no LICENSE in the .dist-info")
        if not any(n.endswith(".dist-info/WHEEL") and b"Root-Is-Purelib: false" in wheel.read(n) for n in names):
            problems.append("WHEEL does not say Root-Is-Purelib: false")
    return [f"{path.name}: {p}" for p in problems]


def check_sdist(path: Path) -> list:
    with tarfile.open(path) as sdist:
        names = {n.split("/", 1)[-1] for n in sdist.getnames()}
    wanted = ("setup.py", "setup.cfg", "LICENSE", "native/init/init.c", "native/common/util.c", "pysandbox/py.typed")
    return [f"{path.name}: {w} missing" for w in wanted if w not in names]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(dist: str, again: str = "") -> int:
    wheels, sdists = sorted(Path(dist).glob("*.whl")), sorted(Path(dist).glob("*.tar.gz"))
    problems = [] if len(sdists) == 1 else [f"{len(sdists)} sdists in {dist}, want 1"]
    built = [arch for arch in ELF_MACHINES if any(w.name.endswith(f"_{arch}.whl") for w in wheels)]
    problems += [f"no {arch} wheel" for arch in ELF_MACHINES if arch not in built]
    for wheel in wheels:
        problems += check_wheel(wheel)
    for sdist in sdists:
        problems += check_sdist(sdist)
    for second in sorted(Path(again).glob("*.whl")) if again else ():
        first = Path(dist) / second.name
        if not first.exists() or digest(first) != digest(second):
            problems.append(f"{second.name}: a second build differs (not reproducible)")
    for problem in problems:
        print("check_wheels:", problem, file=sys.stderr)
    if not problems:
        print(f"check_wheels: {len(wheels)} wheels and {len(sdists)} sdist are sound"
              + (", and the rebuild is identical" if again else "") + f" ({', '.join(built)})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
