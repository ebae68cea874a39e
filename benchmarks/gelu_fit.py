#!/usr/bin/python3
"""gelu_fit.py - fits the constants of the vectorisable GELU kernels
(src/core/vecmath.h: nnlib__exp_for_float; src/layers/activation.c:
gelu_tail_ratio, whose float kernel takes the tail's coefficients rounded
to float) and prints them as C. Run with /usr/bin/python3 (numpy and mpmath, both Debian
packages); it takes about half a minute and is deterministic.

1. e^r on |r| <= ln2/2 (the reduced argument of e^z = 2^n e^r), a
   polynomial 1 + r + c2 r^2 + ... + c6 r^6 (1 + r fixed, so e^0 = 1 and
   e^r is right to first order at 0) minimising the maximum relative
   error.
2. The upper normal tail Q(a) = Phi(-a) = erfc(a / sqrt 2) / 2 written as
   e^{-a^2/2} R(a): R is smooth and slowly varying on [0, A] (R(0) = 1/2,
   R(a) ~ 1/(a sqrt(2 pi)) far out), fitted as P4(a) / D5(a) with D(0) = 1,
   minimising the maximum relative error on [0, A], A = 14.5, past the
   point (a = 14.356) where a Q(a) < 2^-150 rounds to zero in float.

Both fits are linear least squares made minimax by Lawson's reweighting
(weights multiplied by the pointwise error after each solve); the rational
one linearised as P - f D weighted by 1/(f D_previous) (Sanathanan-Koerner).
The reference values come from mpmath at 40 digits, and the printed errors
are measured afresh on a denser grid than the fit's.
"""
import mpmath as mp
import numpy as np

mp.mp.dps = 40
TAIL_END = 14.5


def chebyshev_grid(lo, hi, count):
    return lo + (hi - lo) * (1 - np.cos(np.linspace(0, np.pi, count))) / 2


def fit_exp(degree=6, iters=60):
    """c2..c_degree of e^r = 1 + r + r^2 (c2 + c3 r + ...)."""
    half = float(mp.log(2)) / 2
    r = chebyshev_grid(-half, half, 4000)
    f = np.array([float(mp.exp(x)) for x in r])
    basis = np.vander(r, degree - 1, increasing=True) * (r * r)[:, None]
    rhs = f - 1 - r
    w = np.ones_like(r)
    best = None
    for _ in range(iters):
        sw = np.sqrt(w) / f
        c, *_ = np.linalg.lstsq(basis * sw[:, None], rhs * sw, rcond=None)
        err = (1 + r + basis @ c - f) / f
        if best is None or np.abs(err).max() < best[0]:
            best = (np.abs(err).max(), c)
        w = w * np.abs(err)
        w /= w.sum()
    return best[1]


def tail_ratio(a):
    a = mp.mpf(a)
    return mp.erfc(a / mp.sqrt(2)) / 2 * mp.exp(a * a / 2)


def fit_tail(num_degree=4, den_degree=5, iters=120):
    """P (num_degree + 1 coefficients) and D (D[0] = 1) in powers of a."""
    a = chebyshev_grid(0.0, TAIL_END, 3000)
    f = np.array([float(tail_ratio(x)) for x in a])
    s = a / TAIL_END  # fitted in a / A for conditioning
    vp = np.vander(s, num_degree + 1, increasing=True)
    vd = np.vander(s, den_degree + 1, increasing=True)
    d_prev = np.ones_like(s)
    w = np.ones_like(s)
    best = None
    for it in range(iters):
        m = np.hstack([vp, -f[:, None] * vd[:, 1:]]) / (f * d_prev)[:, None]
        rhs = 1 / d_prev
        sw = np.sqrt(w)
        c, *_ = np.linalg.lstsq(m * sw[:, None], rhs * sw, rcond=None)
        p = c[:num_degree + 1]
        d = np.concatenate([[1.0], c[num_degree + 1:]])
        d_prev = vd @ d
        err = (vp @ p / d_prev - f) / f
        if best is None or np.abs(err).max() < best[0]:
            best = (np.abs(err).max(), p, d)
        if it >= 10:  # a few plain iterations first, then toward minimax
            w = w * np.abs(err)
            w /= w.sum()
    _, p, d = best
    # back to powers of a
    p = p / TAIL_END ** np.arange(num_degree + 1)
    d = d / TAIL_END ** np.arange(den_degree + 1)
    roots = np.roots(d[::-1])
    assert not any(abs(z.imag) < 1e-12 and z.real >= 0 for z in roots), \
        "D has a root on a >= 0"
    return p, d


def horner(c, x):
    y = 0.0 * x + c[-1]
    for k in c[-2::-1]:
        y = y * x + k
    return y


def main():
    c = fit_exp()
    half = float(mp.log(2)) / 2
    r = np.linspace(-half, half, 20001)
    got = 1 + r + r * r * horner(c, r)
    want = np.array([float(mp.exp(x)) for x in r])
    print("/* e^r - (1 + r): max relative error %.3g over |r| <= ln2/2 */"
          % np.abs((got - want) / want).max())
    for k, v in enumerate(c, start=2):
        print("  c%d = %.17g" % (k, v))

    p, d = fit_tail()
    a = np.linspace(0.0, TAIL_END, 14501)
    got = horner(p, a) / horner(d, a)
    want = np.array([float(tail_ratio(x)) for x in a])
    print("/* R(a) = P(a) / D(a): max relative error %.3g over [0, %g] */"
          % (np.abs((got - want) / want).max(), TAIL_END))
    for k, v in enumerate(p):
        print("  p%d = %.17g" % (k, v))
    for k, v in enumerate(d):
        print("  d%d = %.17g" % (k, v))


if __name__ == "__main__":
    main()
