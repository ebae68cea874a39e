"""The package installs offline with Debian's pip and setuptools."""

import os
import shutil
import subprocess
import sys

import nnlib
from conftest import PACKAGE_ROOT


def test_pip_installs_offline_without_build_isolation(tmp_path):
    # build from a copy: an in-tree setuptools build leaves build/ and
    # *.egg-info behind in the source tree
    src = tmp_path / "src"
    shutil.copytree(PACKAGE_ROOT, src,
                    ignore=shutil.ignore_patterns("tests", "build", "*.egg-info",
                                                  "__pycache__"))
    site = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-build-isolation",
         "--no-index", "--no-deps", "--disable-pip-version-check",
         "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    env = dict(os.environ, PYTHONPATH=str(site),
               NNLIB_LIBRARY=nnlib.library_path())
    r = subprocess.run(
        [sys.executable, "-c", "import nnlib; print(nnlib.__file__); "
         "print(nnlib.version_string())"],
        capture_output=True, text=True, env=env, cwd=str(tmp_path),
        timeout=120)
    assert r.returncode == 0, r.stderr
    path, version = r.stdout.split()
    assert path.startswith(str(site))
    assert version == nnlib.version_string()
