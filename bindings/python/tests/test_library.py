"""Loading, version check, and the declarations against include/nnlib.h."""

import ctypes
import os
import re
import subprocess
import sys

import pytest

import nnlib
from nnlib import _lib
from conftest import HEADER, PACKAGE_ROOT

needs_header = pytest.mark.skipif(not os.path.exists(HEADER),
                                  reason="include/nnlib.h not beside the tests")


def _header_text():
    with open(HEADER) as f:
        text = f.read()
    return re.sub(r"/\*.*?\*/", " ", text, flags=re.S)


def _normalise(ctype):
    ctype = re.sub(r"\s+", " ", ctype).strip()
    ctype = re.sub(r"\s*\*", " *", ctype)
    return ctype.replace("* *", "**").strip()


def _header_functions():
    """name -> (result type, [parameter types]) parsed from the header."""
    out = {}
    for m in re.finditer(r"NNLIB_API\s+([^;()]*?)\b(nnlib_\w+)\s*\(([^)]*)\)\s*;",
                         _header_text()):
        result, name, params = m.groups()
        types = []
        if params.strip() != "void":
            for p in params.split(","):
                p = p.strip()
                # drop the parameter name (the last identifier)
                p = re.sub(r"\b\w+$", "", p) if re.search(r"[\w*]\s+\w+$|\*\w+$", p) else p
                types.append(_normalise(p))
        out[name] = (_normalise(result), types)
    return out


def _header_enums():
    """NAME -> value of every enumerator in the header."""
    values = {}
    for body in re.findall(r"typedef enum \w+ \{(.*?)\}", _header_text(), re.S):
        for name, value in re.findall(r"(NNLIB_\w+)\s*=\s*(-?\d+)", body):
            values[name] = int(value)
    return values


def test_version_major():
    assert nnlib.version() // 10000 == nnlib.ABI_MAJOR == 1
    assert nnlib.version_string().startswith("1.")


@needs_header
def test_every_header_function_is_declared_exactly():
    header = _header_functions()
    assert len(header) > 60
    missing = sorted(set(header) - set(_lib.SIGNATURES))
    assert not missing, ("declared in nnlib.h but not in "
                         "bindings/python/nnlib/_lib.py SIGNATURES: %s" % missing)
    extra = sorted(set(_lib.SIGNATURES) - set(header))
    assert not extra, "in SIGNATURES but not in nnlib.h: %s" % extra
    for name, (result, params) in header.items():
        assert _lib.SIGNATURES[name] == (result, params), name
        for t in [result] + params:
            assert t in _lib.C_TYPES, "no ctypes mapping for %r (%s)" % (t, name)


@needs_header
def test_every_header_enum_value_matches():
    enums = _header_enums()
    python = {}
    for prefix, enum in [("NNLIB_ERR_", nnlib.Status),
                         ("NNLIB_LAYER_", nnlib.LayerKind),
                         ("NNLIB_ACT_", nnlib.ActivationKind),
                         ("NNLIB_OPT_", nnlib.OptimizerKind),
                         ("NNLIB_SCHEDULE_", nnlib.Schedule),
                         ("NNLIB_LOSS_", nnlib.Loss),
                         ("NNLIB_SPLIT_", nnlib.Split),
                         ("NNLIB_DTYPE_", nnlib.DType),
                         ("NNLIB_TEXT_", nnlib.TextSplit),
                         ("NNLIB_SIMD_", nnlib.Simd)]:
        for member in enum:
            python[prefix + member.name] = int(member)
    python["NNLIB_OK"] = python.pop("NNLIB_ERR_OK")
    assert python == enums


def test_struct_sizes_match_the_library():
    """The library writes its own sizeof into struct_size."""
    opts = _lib.OptimizerOptions()
    nnlib._core.check(nnlib.lib.nnlib_optimizer_options_init_size(
        ctypes.byref(opts), 1, ctypes.sizeof(opts)))
    assert opts.struct_size == ctypes.sizeof(_lib.OptimizerOptions)
    # the function of the old name fills the size of the 1.3 header, which
    # ends at clip_norm (warmup_steps came in 1.4)
    old = _lib.OptimizerOptions()
    nnlib._core.check(nnlib.lib.nnlib_optimizer_options_init(
        ctypes.byref(old), 1))
    assert old.struct_size == _lib.OptimizerOptions.warmup_steps.offset
    for struct, init in [(_lib.AttentionOptions,
                          "nnlib_attention_options_init_size"),
                         (_lib.GenerateOptions,
                          "nnlib_generate_options_init_size")]:
        o = struct()
        nnlib._core.check(getattr(nnlib.lib, init)(ctypes.byref(o),
                                                   ctypes.sizeof(o)))
        assert o.struct_size == ctypes.sizeof(struct), init
    fit = _lib.FitOptions()
    nnlib._core.check(nnlib.lib.nnlib_fit_options_init(ctypes.byref(fit)))
    assert fit.struct_size == ctypes.sizeof(_lib.FitOptions)
    grad = _lib.GradcheckOptions()
    nnlib._core.check(nnlib.lib.nnlib_gradcheck_options_init(
        ctypes.byref(grad)))
    assert grad.struct_size == ctypes.sizeof(_lib.GradcheckOptions)
    # nnlib_progress: the size the library fills in for the callback
    import numpy as np
    from conftest import xor_model
    seen = []
    with xor_model() as m:
        opts = _lib.FitOptions()
        nnlib.lib.nnlib_fit_options_init(ctypes.byref(opts))
        cb = _lib.PROGRESS_FN(
            lambda p, u: seen.append(p.contents.struct_size) or 0)
        opts.progress = cb
        with nnlib.Tensor.wrap(np.zeros((4, 2), np.float32)) as x, \
                nnlib.Tensor.wrap(np.zeros((4, 1), np.float32)) as t:
            nnlib._core.check(nnlib.lib.nnlib_model_fit(
                m._ptr(), x._ptr(), t._ptr(), ctypes.byref(opts)))
    assert seen == [ctypes.sizeof(_lib.Progress)]
    # nnlib_allocator has no init function: check the layout by hand
    assert ctypes.sizeof(_lib.Allocator) == 4 * ctypes.sizeof(ctypes.c_void_p)


def _import_with(env):
    code = "import nnlib; print(nnlib.library_path())"
    full = dict(os.environ, PYTHONPATH=PACKAGE_ROOT, **env)
    return subprocess.run([sys.executable, "-c", code], env=full,
                          capture_output=True, text=True, timeout=120)


def test_relative_library_path_is_named_absolutely(tmp_path):
    """NNLIB_LIBRARY relative to the working directory (as the README's
    test command gives it): library_path() names the same file from
    anywhere, so a child process started elsewhere finds it."""
    real = os.path.realpath(nnlib.library_path())
    here = os.path.dirname(real)
    relative = os.path.relpath(real, str(tmp_path))
    full = dict(os.environ, PYTHONPATH=PACKAGE_ROOT, NNLIB_LIBRARY=relative)
    r = subprocess.run([sys.executable, "-c",
                        "import nnlib; print(nnlib.library_path())"],
                       env=full, cwd=str(tmp_path), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    named = r.stdout.strip()
    assert os.path.isabs(named)
    assert os.path.realpath(named) == real
    assert os.path.dirname(os.path.realpath(named)) == here


def test_missing_library_names_what_was_tried():
    r = _import_with({"NNLIB_LIBRARY": "/nonexistent/libnnlib.so.1"})
    assert r.returncode != 0
    assert "LibraryNotFoundError" in r.stderr
    assert "NNLIB_LIBRARY=/nonexistent/libnnlib.so.1" in r.stderr


def test_lookup_order_without_env(tmp_path):
    """Without NNLIB_LIBRARY the loader and then pkg-config are tried; a
    pkg-config that knows the build tree's nnlib.pc is enough."""
    env = {"NNLIB_LIBRARY": "", "LD_LIBRARY_PATH": ""}
    libdir = os.path.dirname(os.path.realpath(nnlib.library_path()))
    pc = os.path.join(libdir, "nnlib.pc")
    r = _import_with(dict(env, PKG_CONFIG_PATH=str(tmp_path),
                          PKG_CONFIG_LIBDIR=str(tmp_path)))
    if r.returncode == 0:  # an installed nnlib: found by the loader
        return
    assert "the system loader" in r.stderr and "pkg-config" in r.stderr
    if not os.path.exists(pc):
        return
    # point pkg-config at a copy of the build tree's .pc with libdir fixed
    with open(pc) as f:
        text = f.read()
    text = re.sub(r"(?m)^libdir=.*$", "libdir=" + libdir, text)
    (tmp_path / "nnlib.pc").write_text(text)
    r = _import_with(dict(env, PKG_CONFIG_PATH=str(tmp_path),
                          PKG_CONFIG_LIBDIR=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == os.path.join(libdir, "libnnlib.so.1")


def test_threads_setting_round_trips():
    before = nnlib.get_num_threads()
    nnlib.set_num_threads(1)
    assert nnlib.get_num_threads() == 1
    nnlib.set_num_threads(before)


def _openblas_in_this_process():
    """OpenBLAS as loaded into this process (the copy nnlib calls), opened
    again by its path from /proc/self/maps; None when there is none, or
    more than one (numpy may bring its own) and so no telling which."""
    paths = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "libopenblas" in os.path.basename(path):
                paths.add(path)
    return ctypes.CDLL(paths.pop()) if len(paths) == 1 else None


def test_blas_info_is_openblas_own_answer():
    info = nnlib.blas_info()
    blas = _openblas_in_this_process()
    if blas is None:
        pytest.skip("not exactly one libopenblas in /proc/self/maps")
    blas.openblas_get_corename.restype = ctypes.c_char_p
    blas.openblas_get_config.restype = ctypes.c_char_p
    assert info["kernels"] == blas.openblas_get_corename().decode()
    assert info["config"] == blas.openblas_get_config().decode()
    assert isinstance(info["cpu_simd"], nnlib.Simd)
    if os.environ.get("OPENBLAS_CORETYPE") == "Haswell":
        assert info["kernels_simd"] == nnlib.Simd.AVX2
        assert info["kernels_are_fallback"] is False
        assert info["suggested_kernels"] is None
    # kernels to set instead only for a fallback of a DYNAMIC_ARCH build
    assert (info["suggested_kernels"] is not None) == (
        info["kernels_are_fallback"] and "DYNAMIC_ARCH" in info["config"])
