"""What `./run` installs into .venv, and when: one requirements file per command, stamped.

`./run` (and `./run manage`, `./run example`) needs only the product (requirements.txt);
`./run test` adds the test tools (requirements-dev.txt); `./run bench` adds the benchmark tools
(requirements-bench.txt). Each file includes the one below it with `-r`. After pip installed a
file, a stamp per file of that chain records the hash of its chain, so `./run` after
`./run test` installs nothing, and a changed file reinstalls only what depends on it.

This module runs with the Python that creates .venv (standard library only). Installs only ever
add to .venv: it is never removed or rebuilt while other runs use it. A lock (.data/install.lock)
lets one run install while a second one waits for it and then finds its stamp in place.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Which requirements file a `./run` sub-command needs, and what to call it in the progress line.
FILE_FOR_COMMAND = {"test": "requirements-dev.txt", "bench": "requirements-bench.txt"}
PRODUCT_FILE = "requirements.txt"
PURPOSE = {
    "requirements.txt": "the product",
    "requirements-dev.txt": "the tests",
    "requirements-bench.txt": "the benchmarks",
}
# Lines of pip's output nobody needs: where it looks and notes about local index mirrors, and one
# line per package already installed (most of them when the tests' file adds to the product's).
NOISE = ("WARNING: Location", "Looking in ", "Requirement already satisfied")
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def say(message: str) -> None:
    # Progress goes to stderr: `./run example > file` keeps only the example.
    print(f"run: {message}", file=sys.stderr, flush=True)


def requirements_file(command: str) -> str:
    return FILE_FOR_COMMAND.get(command, PRODUCT_FILE)


def chain(root: Path, name: str) -> list[str]:
    """The file and every file it includes with `-r`, the file itself first."""
    seen: list[str] = []

    def visit(current: str) -> None:
        if current in seen:
            return
        seen.append(current)
        for line in (root / current).read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("-r", "--requirement"):
                visit(parts[1])

    visit(name)
    return seen


def chain_hash(root: Path, name: str) -> str:
    digest = hashlib.sha256()
    for member in chain(root, name):
        digest.update(member.encode() + b"\0" + (root / member).read_bytes() + b"\0")
    return digest.hexdigest()


def stamp_path(venv: Path, name: str) -> Path:
    return venv / f".installed-{name}.sha256"


def is_installed(root: Path, venv: Path, name: str) -> bool:
    stamp = stamp_path(venv, name)
    return stamp.exists() and stamp.read_text().strip() == chain_hash(root, name)


def write_stamps(root: Path, venv: Path, name: str) -> None:
    """pip installed `name`, so every file of its chain is installed too."""
    for member in chain(root, name):
        stamp = stamp_path(venv, member)
        tmp = stamp.with_suffix(".tmp")
        tmp.write_text(chain_hash(root, member) + "\n")
        tmp.replace(stamp)


def pins(root: Path, name: str) -> dict[str, str]:
    """name → version of every pinned line in the chain (names normalized as pip does)."""
    found: dict[str, str] = {}
    for member in chain(root, name):
        for line in (root / member).read_text().splitlines():
            match = PIN.match(line)
            if match:
                found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(3)
    return found


MISSING_SCRIPT = """
import json, sys
from importlib import metadata
wanted = json.loads(sys.argv[1])
missing = []
for name, version in wanted.items():
    try:
        if metadata.version(name) != version:
            missing.append(name)
    except metadata.PackageNotFoundError:
        missing.append(name)
print(json.dumps(missing))
"""


def missing_pins(root: Path, venv: Path, name: str) -> list[str]:
    """Pinned packages of the chain that .venv lacks (or holds in another version)."""
    import json

    wanted = pins(root, name)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", MISSING_SCRIPT, json.dumps(wanted)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return sorted(wanted)
    return json.loads(result.stdout)


def pip(venv: Path, *args: str, cwd: Path) -> int:
    """Run pip with its output shown line by line on stderr, without the noise lines."""
    proc = subprocess.Popen(
        [str(venv / "bin" / "python"), "-m", "pip", *args, "--disable-pip-version-check"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )

    def relay() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.lstrip().startswith(NOISE):
                sys.stderr.write(f"  {line}" if line.strip() else line)
                sys.stderr.flush()

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    code = proc.wait()
    reader.join()
    return code


def create_venv(python: str, venv: Path, root: Path) -> bool:
    say("creating .venv")
    if subprocess.run([python, "-m", "venv", str(venv)], check=False).returncode != 0:
        say(
            f"could not create {venv} with {python} -m venv (on Debian: apt-get install python3-venv)"
        )
        return False
    return pip(venv, "install", "--quiet", "--upgrade", "pip", cwd=root) == 0


def ensure(command: str, *, root: Path = ROOT, python: str = sys.executable) -> int:
    """Make .venv hold what `./run <command>` needs; 0 when it does."""
    venv = root / ".venv"
    name = requirements_file(command)
    if (venv / "bin" / "python").exists() and is_installed(root, venv, name):
        return 0  # the usual case: nothing to do, no lock taken
    data = root / ".data"
    data.mkdir(exist_ok=True)
    with open(data / "install.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another ./run is installing into .venv; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        first = not (venv / "bin" / "python").exists()
        if first and not create_venv(python, venv, root):
            return 1
        if is_installed(root, venv, name):
            return 0  # the run we waited for installed it
        purpose = PURPOSE.get(name, name)
        missing = missing_pins(root, venv, name)
        count = f"{len(missing)} package{'s' if len(missing) != 1 else ''} (and what they need)"
        if not missing:
            say(f"checking the requirements for {purpose} (they changed)…")
        elif stamp_path(venv, name).exists():
            say(f"installing {count} for {purpose} (the requirements changed)…")
        else:
            say(f"installing {count} for {purpose} (first start only; a few minutes)…")
        code = pip(venv, "install", "--progress-bar", "off", "-r", name, cwd=root)
        if code != 0:
            say(f"pip could not install {name} (exit {code}; its reasons are above)")
            return 1
        write_stamps(root, venv, name)
        (venv / ".requirements.sha256").unlink(missing_ok=True)  # the single stamp of old
        say(f"installed the requirements for {purpose}")
    return 0


if __name__ == "__main__":
    sys.exit(ensure(sys.argv[1] if len(sys.argv) > 1 else ""))
