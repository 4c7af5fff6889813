"""Check (or write) requirements.lock: the exact version of every package the tests passed with.

    python tools/check_lock.py requirements.lock           # exit 1 when the venv differs
    python tools/check_lock.py --write requirements.lock   # record this venv (`make lock`)

`make setup` installs with the lock as pip constraints, then runs this check; `make test` runs
it again, so a venv that drifted from the lock (a package upgraded by hand, a set-up without
the lock) fails before any test. Packages in the venv that the lock does not name (a
debugger installed by hand) are listed but allowed. The lock records the platform it was made
on: pip resolves some packages per platform (uvloop is not installed on Windows, say), so on
another platform the check says so and passes.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

#: Never pinned: the installer's own tools, and the project itself (installed editable).
UNPINNED = {"pip", "setuptools", "wheel", "crossmodal"}


def normalise(name: str) -> str:
    """PEP 503 name: 'Typing_Extensions' and 'typing-extensions' are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def this_platform() -> str:
    return f"{sys.implementation.name}{sys.version_info.major}.{sys.version_info.minor}-" + (
        f"{platform.system().lower()}-{platform.machine().lower()}"
    )


def installed() -> dict[str, str]:
    """{normalised name: version} of every distribution in this environment."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and normalise(name) not in UNPINNED:
            found[normalise(name)] = dist.version
    return found


def read_lock(path: Path) -> tuple[str | None, dict[str, str]]:
    """(platform the lock was made on, {normalised name: version})."""
    made_on: str | None = None
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("# platform:"):
            made_on = line.split(":", 1)[1].strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise SystemExit(f"{path}: cannot read line {raw!r} (expected name==version)")
        pins[normalise(name)] = version.strip()
    return made_on, pins


def differences(pins: dict[str, str], have: dict[str, str]) -> list[str]:
    """One line per locked package that is missing or at another version."""
    out = []
    for name, version in sorted(pins.items()):
        if name not in have:
            out.append(f"{name}: locked at {version}, not installed")
        elif have[name] != version:
            out.append(f"{name}: locked at {version}, installed {have[name]}")
    return out


def write(path: Path) -> None:
    have = installed()
    lines = [
        "# Every package version the test suite passed with; `make setup` installs exactly these",
        "# (pip constraints) and `make test` checks them. Refresh: `make lock`, then the suite.",
        f"# platform: {this_platform()}",
        *(f"{name}=={version}" for name, version in sorted(have.items())),
    ]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}: {len(have)} packages")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument("--write", action="store_true", help="record this environment")
    args = parser.parse_args(argv)
    if args.write:
        write(args.lock)
        return 0
    if not args.lock.is_file():
        print(f"{args.lock} is missing: run `make lock` to create it", file=sys.stderr)
        return 1
    made_on, pins = read_lock(args.lock)
    if made_on is not None and made_on != this_platform():
        print(f"{args.lock} was made on {made_on}, this is {this_platform()}: not checked")
        return 0
    have = installed()
    wrong = differences(pins, have)
    extra = sorted(set(have) - set(pins))
    if extra:
        print(f"not in {args.lock} (allowed): {', '.join(extra)}")
    if wrong:
        print(
            f"this environment differs from {args.lock} in {len(wrong)} packages:\n  "
            + "\n  ".join(wrong)
            + "\nrebuild it with `make clean-venv setup`, or refresh the lock with `make lock`",
            file=sys.stderr,
        )
        return 1
    print(f"{len(pins)} packages at the versions of {args.lock}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
