"""Makes the source tree's nnlib importable (tests run from the build tree
without installing) and shares small helpers."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
REPO_ROOT = os.path.dirname(os.path.dirname(PACKAGE_ROOT))
HEADER = os.path.join(REPO_ROOT, "include", "nnlib.h")

sys.dont_write_bytecode = True
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)

import nnlib  # noqa: E402


def require_torch():
    """Debian's python3-torch for the comparisons with PyTorch; a module
    skip instead when it is missing and NNLIB_SKIP_TORCH is set. Call at
    module level."""
    try:
        import torch
    except ImportError:
        if os.environ.get("NNLIB_SKIP_TORCH"):
            pytest.skip("NNLIB_SKIP_TORCH is set and torch is missing",
                        allow_module_level=True)
        raise ImportError("the PyTorch comparisons need Debian's "
                          "python3-torch (listed in scripts/packages.txt; "
                          "run scripts/setup.sh) or NNLIB_SKIP_TORCH=1 to "
                          "skip them") from None
    return torch


def needs(*symbols):
    """Skips a test while the loaded library lacks one of `symbols` (parts
    of the header that are declared but not implemented yet)."""
    missing = [s for s in symbols if not nnlib.lib.has(s)]
    return pytest.mark.skipif(
        bool(missing), reason="library does not export %s yet"
        % ", ".join(missing))


def xor_model(seed=7, lr=0.5, momentum=0.9):
    """The architecture of examples/xor.c."""
    model = nnlib.Model([nnlib.Dense(4, 2), nnlib.Sigmoid(),
                         nnlib.Dense(1, 4), nnlib.Sigmoid()])
    model.compile((2,), "mse", nnlib.SGD(lr, momentum), max_batch=4,
                  seed=seed)
    return model
