"""Builds the wheel with the Rust library inside it.

`pip wheel`, `pip install` and `python -m build` run `cargo build --release --lib`
on the crate (the checkout's, or the copy an sdist carries under `rust/`) and put
`libinsecure_code_detector.so` (`.dylib`, `.dll`) into the package, which loads it
with ctypes. The wheel is tagged `py3-none-PLATFORM`: the library is a plain C library
that links no libpython, so one wheel serves every Python 3 on its platform. (Why not
setuptools-rust: its plain-library binding installs the library under a CPython
extension's name, `*.cpython-311-x86_64-linux-gnu.so`, and tags the wheel for one
CPython version.)

Environment:
- `CARGO_TARGET_DIR`: cargo's target directory (default: the crate's `target/`), so
  that the wheel, the C install (`scripts/install-c`) and the tests share one
  release build.
- `ICD_CARGO_FEATURES`: the library's features (default `flex,scan,cache,train`: the
  CPU backend, function finding, the prediction cache and fine-tuning; add `wgpu` or
  `cuda` for a GPU backend).
- `CARGO`: the cargo to run.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

from setuptools.command.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
PACKAGE = "insecure_code_detector"
# What of the crate an sdist carries (under rust/), enough for `cargo build --lib`.
CRATE_FILES = ["Cargo.toml", "Cargo.lock", "build.rs", "cbindgen.toml", "README.md"]
CRATE_DIRS = ["src", "include", "benches"]
LIBRARY_NAMES = {"linux": "libinsecure_code_detector.so", "darwin": "libinsecure_code_detector.dylib",
                 "win32": "insecure_code_detector.dll"}


def crate_dir():
    """The crate: rust/ in an unpacked sdist, else the checkout this package sits in."""
    for candidate in (HERE / "rust", HERE.parents[1]):
        if (candidate / "Cargo.toml").is_file():
            return candidate
    sys.exit("insecure_code_detector: no Rust crate found (neither rust/ nor ../../Cargo.toml)")


def build_library():
    """`cargo build --release --lib`: the path of the shared library it made."""
    crate = crate_dir()
    features = os.environ.get("ICD_CARGO_FEATURES", "flex,scan,cache,train")
    command = [os.environ.get("CARGO", "cargo"), "build", "--release", "--lib", "--no-default-features",
               "--features", features, "--manifest-path", str(crate / "Cargo.toml"),
               "--message-format=json-render-diagnostics"]
    print("running", " ".join(command), file=sys.stderr, flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, check=True)
    wanted = LIBRARY_NAMES.get(sys.platform, LIBRARY_NAMES["linux"])
    for line in done.stdout.decode().splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and "cdylib" in message["target"]["crate_types"]:
            for path in message["filenames"]:
                if Path(path).name == wanted:
                    return Path(path)
    sys.exit(f"insecure_code_detector: cargo made no {wanted}")


class BuildPyWithLibrary(build_py):
    """Builds the package, then the library into it."""

    def run(self):
        super().run()
        library = build_library()
        target = Path(self.build_lib) / PACKAGE / library.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(library, target)
        os.chmod(target, 0o755)


class SdistWithCrate(sdist):
    """An sdist that carries the crate's sources under rust/, so that a wheel builds
    from it alone."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        crate = crate_dir()
        rust = Path(base_dir) / "rust"
        for name in CRATE_FILES:
            if (crate / name).is_file():
                rust.mkdir(parents=True, exist_ok=True)
                shutil.copy2(crate / name, rust / name)
        for name in CRATE_DIRS:
            if (crate / name).is_dir():
                shutil.copytree(crate / name, rust / name, dirs_exist_ok=True)


class PlatformWheel(bdist_wheel):
    """py3-none-PLATFORM: a platform's wheel for any Python 3 (the library links no
    libpython)."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


class LibraryDistribution(Distribution):
    """A distribution with a native library: installed as platform-specific (platlib)."""

    def has_ext_modules(self):
        return True


setup(
    distclass=LibraryDistribution,
    cmdclass={"build_py": BuildPyWithLibrary, "sdist": SdistWithCrate, "bdist_wheel": PlatformWheel},
)
