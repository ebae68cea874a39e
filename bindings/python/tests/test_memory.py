"""Handles are freed: 100,000 models created and freed keep RSS flat."""

import gc
import os
import weakref

import numpy as np

import nnlib

MODELS = 100_000
X = np.ones((2, 3), np.float32)


def rss_kib():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _one(i):
    """A compiled model with an optimizer; freed by close(), by `with`, or
    by the garbage collector, in turn."""
    m = nnlib.Model([nnlib.Dense(8, 3), nnlib.ReLU(), nnlib.Dense(2)])
    m.compile((3,), "mse", nnlib.SGD(0.1, 0.9), max_batch=2, seed=i)
    m.predict(X)
    kind = i % 3
    if kind == 0:
        m.close()
    elif kind == 1:
        with m:
            pass
    # kind 2: dropped here, freed by reference counting


def test_100000_models_keep_memory_flat():
    for i in range(2_000):  # warm up allocator pools and caches
        _one(i)
    gc.collect()
    start = rss_kib()
    samples = []
    for i in range(MODELS):
        _one(i)
        if i % 20_000 == 0:
            samples.append(rss_kib())
    gc.collect()
    end = rss_kib()
    growth = end - start
    print("\nRSS: %d KiB after warm-up, %d KiB after %d models (growth %d "
          "KiB; samples %s)" % (start, end, MODELS, growth, samples))
    # a leak of one small model per iteration would be tens of megabytes
    assert growth < 4 * 1024


def test_layers_and_optimizers_not_added_are_freed_too():
    start = None
    for i in range(20_000):
        nnlib.Dense(16)
        nnlib.Sigmoid()
        nnlib.Adam()
        nnlib.Tensor((4, 4))
        if i == 2_000:
            gc.collect()
            start = rss_kib()
    gc.collect()
    assert rss_kib() - start < 2 * 1024


def test_no_reference_cycles_keep_models_alive():
    m = nnlib.Model([nnlib.Dense(2, 2), nnlib.Sigmoid()])
    m.compile((2,), "mse", "sgd")
    layers = m.layers
    opt = m.optimizer
    ref = weakref.ref(m)
    del m
    assert ref() is not None  # the views keep it alive ...
    del layers, opt
    assert ref() is None      # ... and nothing else does: freed at once
