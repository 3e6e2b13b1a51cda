"""Ridge regression with its penalty chosen by exact leave-one-out error (closed form).

Rows are weighted (``w``): the additive table in milliseconds is fitted for relative error
(``w = 1 / y**2``), the log-space families unweighted. The intercept (column 0) is left
practically unpenalized by scaling it up before the fit. One SVD gives the leave-one-out
residuals ``e_i / (1 - h_ii)`` of every penalty on the grid, so choosing it costs one fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_INTERCEPT_SCALE = 1e3
#: penalties tried, relative to the mean squared norm of a penalised column
LAMBDA_GRID = tuple(10.0 ** k for k in (-4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2))


@dataclass(frozen=True)
class RidgeFit:
    coef: np.ndarray
    lam: float
    loo_mse: float  # weighted leave-one-out mean squared error at ``lam``


def _prepare(x: np.ndarray, y: np.ndarray, w: np.ndarray | None):
    x = np.array(x, dtype=float, copy=True)
    x[:, 0] *= _INTERCEPT_SCALE
    sw = np.sqrt(w) if w is not None else np.ones(len(y))
    return x * sw[:, None], y * sw, sw


def fit_ridge(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, lam: float | None = None,
              grid: tuple[float, ...] = LAMBDA_GRID, scale_cols: int | None = None) -> RidgeFit:
    """Fit ``y ~ x @ coef`` (column 0 the intercept); ``lam`` None picks it by leave-one-out.

    ``grid`` is relative to the mean squared norm of the penalised columns, or of columns
    ``1 .. scale_cols - 1`` only (e.g. the one-hot table, when scaled feature columns follow it).
    """
    xs, ys, _sw = _prepare(x, y, w)
    u, s, vt = np.linalg.svd(xs, full_matrices=False)
    keep = s > s[0] * 1e-10
    u, s, vt = u[:, keep], s[keep], vt[keep]
    # penalties are relative to the mean squared norm of the penalised columns (not the scaled intercept)
    ref = xs[:, 1:scale_cols]
    scale = float(np.sum(ref**2) / max(ref.shape[1], 1)) or 1.0
    uty = u.T @ ys

    def loo_mse(lam_abs: float) -> float:
        shrink = s**2 / (s**2 + lam_abs)
        fitted = u @ (shrink * uty)
        h = np.einsum("ik,k,ik->i", u, shrink, u)
        return float(np.mean(((ys - fitted) / np.maximum(1.0 - h, 1e-6)) ** 2))

    candidates = [lam] if lam is not None else [rel * scale for rel in grid]
    if not candidates:
        raise ValueError("fit_ridge needs a penalty: pass lam or a non-empty grid")
    lam_abs, mse = min(((c, loo_mse(c)) for c in candidates), key=lambda pair: pair[1])
    coef = vt.T @ ((s / (s**2 + lam_abs)) * uty)
    coef[0] *= _INTERCEPT_SCALE
    return RidgeFit(coef, lam_abs, mse)


def solve_ridge(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, lam: float) -> np.ndarray:
    """The coefficients at a fixed penalty (normal equations; used inside cross-validation)."""
    xs, ys, _ = _prepare(x, y, w)
    a = xs.T @ xs + lam * np.eye(xs.shape[1])
    coef = np.linalg.solve(a, xs.T @ ys)
    coef[0] *= _INTERCEPT_SCALE
    return coef


def single_blas_thread():
    """A context that keeps BLAS to one thread: the fit's matrices are a few hundred columns, and
    on a shared host BLAS threads waiting for busy cores made it ten times slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; without it the fit is only slower
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
