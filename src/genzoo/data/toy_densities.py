"""True log densities of the 2-D toys, computed in float64 and in log space.

- closed form for the Gaussian mixtures (8gaussians, 25gaussians) and checkerboard;
- closed form with the modified Bessel function for rings of Gaussian noise (circles, rings):
  a circle of radius R blurred by N(0, s^2 I) has density
  exp(-(r^2 + R^2) / 2s^2) I0(rR / s^2) / (2 pi s^2) at radius r;
- quadrature over the latent curve parameter for moons, swissroll and 2spirals: the data are a
  point on a curve (latent t) plus noise, so p(x) = int p(t) k(x - c(t)) dt, computed with
  composite Gauss-Legendre panels a fraction of the noise scale long (error far below 1e-3 nats);
- for pinwheel, an exact change of variables summed over every preimage (see
  :func:`_pinwheel_log_prob`).

The shapes (centres, radii, curves, the pinwheel's parameters) are those of the samplers in
:mod:`genzoo.data.toy_samplers`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.special import log_ndtr, ndtr

from genzoo.data.toy_samplers import (
    PIN_ARMS,
    PIN_RADIAL,
    PIN_RATE,
    PIN_TANGENTIAL,
    RING_RADII,
    SPIRAL_TMAX,
    Array,
    centres_8gaussians,
    centres_25gaussians,
    spiral_curve,
)

Tensor = torch.Tensor

_LOG_2PI = math.log(2.0 * math.pi)

_CHUNK_ELEMENTS = 2_000_000  # points x nodes per block, bounds memory to tens of MB


def _gauss_mixture_log_prob(x: Tensor, centres: Array, std: float) -> Tensor:
    c = torch.as_tensor(centres, dtype=torch.float64)
    d2 = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    log_k = -d2 / (2 * std**2) - _LOG_2PI - 2 * math.log(std)
    return torch.logsumexp(log_k, dim=1) - math.log(len(centres))


def _log_prob_8gaussians(x: Tensor) -> Tensor:
    return _gauss_mixture_log_prob(x, centres_8gaussians() / 1.414, 0.5 / 1.414)


def _log_prob_25gaussians(x: Tensor) -> Tensor:
    return _gauss_mixture_log_prob(x, centres_25gaussians() / 2.828, 0.05 / 2.828)


def _log_prob_checkerboard(x: Tensor) -> Tensor:
    cell = torch.floor(x / 2.0)
    inside = ((cell >= -2) & (cell <= 1)).all(dim=1)
    black = torch.remainder(cell[:, 0] - cell[:, 1], 2) == 0
    out = torch.full((x.shape[0],), -math.log(32.0), dtype=torch.float64)
    return out.masked_fill(~(inside & black), -math.inf)


def _ring_mixture_log_prob(x: Tensor, radii: Array, weights: Array, std: float) -> Tensor:
    """Mixture of circles of the given radii, each blurred by isotropic N(0, std^2)."""
    r = torch.linalg.vector_norm(x, dim=1)[:, None]
    R = torch.as_tensor(radii, dtype=torch.float64)[None]
    v = std**2
    # log I0(z) = log(i0e(z)) + z, so the exponent becomes -(r - R)^2 / 2v.
    log_k = -((r - R) ** 2) / (2 * v) + torch.log(torch.special.i0e(r * R / v))
    log_k = log_k - _LOG_2PI - math.log(v) + torch.log(torch.as_tensor(weights))[None]
    return torch.logsumexp(log_k, dim=1)


def _log_prob_circles(x: Tensor) -> Tensor:
    return _ring_mixture_log_prob(x, np.array([3.0, 1.5]), np.array([0.5, 0.5]), 0.24)


def _log_prob_rings(x: Tensor) -> Tensor:
    radii = 3.0 * np.array(RING_RADII)
    return _ring_mixture_log_prob(x, radii, np.full(4, 0.25), 0.08)


@dataclass(frozen=True)
class _Nodes:
    """Quadrature nodes on a latent curve: positions (M, 2) and log weights (M,)."""

    points: Tensor
    log_w: Tensor


def _curve_nodes(
    curve: Callable[[Array], Array],
    log_density: Callable[[Array], Array],
    a: float,
    b: float,
    panel_length: float,
    order: int = 6,
) -> _Nodes:
    """Composite Gauss-Legendre nodes for int_a^b p(t) f(curve(t)) dt.

    Panels have equal arc length ``panel_length`` (a fraction of the noise scale), so that the
    noise kernel is resolved equally well all along the curve whatever its speed.
    """
    t_dense = np.linspace(a, b, 200_001)
    pts = curve(t_dense)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    panels = max(1, int(np.ceil(arc[-1] / panel_length)))
    edges = np.interp(np.linspace(0.0, arc[-1], panels + 1), arc, t_dense)
    gx, gw = np.polynomial.legendre.leggauss(order)
    half = (edges[1:] - edges[:-1])[:, None] / 2.0
    mid = (edges[1:] + edges[:-1])[:, None] / 2.0
    t = (mid + half * gx[None]).ravel()
    w = (half * gw[None]).ravel()
    return _Nodes(
        torch.as_tensor(curve(t), dtype=torch.float64),
        torch.as_tensor(np.log(w) + log_density(t), dtype=torch.float64),
    )


def _concat(*nodes: _Nodes, log_mix: float = 0.0) -> _Nodes:
    return _Nodes(
        torch.cat([n.points for n in nodes]), torch.cat([n.log_w for n in nodes]) + log_mix
    )


def _gauss_curve_log_prob(x: Tensor, nodes: _Nodes, std: float) -> Tensor:
    """log sum_m w_m N(x; c_m, std^2 I), blockwise (the quadrature of a blurred curve)."""
    xs = x.numpy() / std
    c = nodes.points.numpy() / std
    log_w = nodes.log_w.numpy() - 0.5 * (c**2).sum(1)
    out = np.empty(len(xs))
    step = max(1, _CHUNK_ELEMENTS // len(c))
    for i in range(0, len(xs), step):
        xb = xs[i : i + step]
        a = xb @ c.T  # -|x - c|^2 / 2 = x.c - |c|^2 / 2 - |x|^2 / 2
        a += log_w[None]
        m = a.max(axis=1)
        a -= m[:, None]
        np.exp(a, out=a)
        out[i : i + step] = m + np.log(a.sum(axis=1)) - 0.5 * (xb**2).sum(1)
    return torch.as_tensor(out - _LOG_2PI - 2 * math.log(std))


# Panels of 1.5 noise scales with 8 Gauss-Legendre nodes each resolve the kernel to ~1e-9 nats
# for points within a few noise scales of the curve. Far from the curve the integrand narrows
# (to std^2 / distance), so points whose log density is below -25 are recomputed on panels of
# half a noise scale, and those below -250 on panels of an eighth; the error stays below 1e-6
# nats down to log densities of about -1000 (checked against 0.015-noise-scale panels).
_ORDER, _COARSE = 8, 1.5
_TIERS = ((-25.0, 0.5), (-250.0, 0.125))


def _tiered(x: Tensor, evaluate: Callable[[Tensor, float], Tensor]) -> Tensor:
    out = evaluate(x, _COARSE)
    for threshold, panel in _TIERS:
        far = out < threshold
        if far.any():
            out[far] = evaluate(x[far], panel)
    return out


@lru_cache(maxsize=4)
def _moons_nodes(panel: float) -> _Nodes:
    def outer(t: Array) -> Array:
        return 2.0 * np.stack([np.cos(t), np.sin(t)], -1) + np.array([-1.0, -0.2])

    def inner(t: Array) -> Array:
        return 2.0 * np.stack([1 - np.cos(t), 0.5 - np.sin(t)], -1) + np.array([-1.0, -0.2])

    def uniform(t: Array) -> Array:
        return np.full_like(t, -math.log(math.pi))

    return _concat(
        _curve_nodes(outer, uniform, 0.0, math.pi, panel, _ORDER),
        _curve_nodes(inner, uniform, 0.0, math.pi, panel, _ORDER),
        log_mix=-math.log(2.0),
    )


def _log_prob_moons(x: Tensor) -> Tensor:
    std = 0.2
    return _tiered(x, lambda xx, h: _gauss_curve_log_prob(xx, _moons_nodes(h * std), std))


@lru_cache(maxsize=4)
def _swissroll_nodes(panel: float) -> _Nodes:
    a, b = 1.5 * math.pi, 4.5 * math.pi

    def curve(t: Array) -> Array:
        return np.stack([t * np.cos(t), t * np.sin(t)], -1) / 5.0

    def uniform(t: Array) -> Array:
        return np.full_like(t, -math.log(b - a))

    return _curve_nodes(curve, uniform, a, b, panel, _ORDER)


def _log_prob_swissroll(x: Tensor) -> Tensor:
    std = 0.2
    return _tiered(x, lambda xx, h: _gauss_curve_log_prob(xx, _swissroll_nodes(h * std), std))


_SPIRAL_STD, _SPIRAL_BOX = 0.1, 0.5 / 3.0


@lru_cache(maxsize=4)
def _spiral_nodes(panel: float) -> _Nodes:
    """Lower corners of the jitter boxes of both arms, with log weights.

    t = 3 pi sqrt(U) has density 2 t / (3 pi)^2 on [0, 3 pi]. After the division by 3 the first
    arm is c(t) + [0, w)^2 with w = 1/6, and the second arm is its negation, whose box has lower
    corner -c(t) - w.
    """

    def curve(t: Array) -> Array:
        return spiral_curve(t) / 3.0

    def density(t: Array) -> Array:
        return np.log(2.0 * t / SPIRAL_TMAX**2)

    arm = _curve_nodes(curve, density, 0.0, SPIRAL_TMAX, panel, _ORDER)
    other = _Nodes(-arm.points - _SPIRAL_BOX, arm.log_w)
    return _concat(arm, other, log_mix=-math.log(2.0))


def _log_box_gauss(z: Array, width: float, std: float) -> Array:
    """log density at z of U[0, width) + N(0, std^2): log(Phi(z/s) - Phi((z-width)/s)) - log w."""
    hi, lo = z / std, (z - width) / std
    # Use the upper tail when both arguments are positive, where Phi is close to 1.
    flip = lo > 0
    b = np.where(flip, -lo, hi)
    a = np.where(flip, -hi, lo)
    lb, la = log_ndtr(b), log_ndtr(a)
    return lb + np.log(-np.expm1(la - lb)) - math.log(width)


@lru_cache(maxsize=4)
def _spiral_tree(panel: float) -> tuple[cKDTree, Array, Array]:
    nodes = _spiral_nodes(panel * _SPIRAL_STD)
    corners = nodes.points.numpy()
    return cKDTree(corners + _SPIRAL_BOX / 2.0), corners, nodes.log_w.numpy()


def _box_curve_log_prob_far(x: Tensor) -> Tensor:
    """Log-space 2spirals density from the boxes near each point (for points off the curve).

    With d the distance to the nearest box centre, a box whose centre is farther than
    w/sqrt(2) + sqrt((d + w/sqrt(2))^2 + 60 std^2) contributes e^-30 times less than the
    nearest one, so only boxes within that radius are summed. Panels shrink with d as the
    integrand narrows: 1.5 noise scales up to d = 15 std, 0.5 up to 30 std, then 1/8.
    """
    xs = x.numpy()
    d, _ = _spiral_tree(_COARSE)[0].query(xs)
    tier = np.digitize(d, [15 * _SPIRAL_STD, 30 * _SPIRAL_STD])
    out = np.empty(len(xs))
    for k, panel in enumerate((_COARSE, *(p for _, p in _TIERS))):
        sel = np.flatnonzero(tier == k)
        if len(sel):
            out[sel] = _box_near_sum(xs[sel], *_spiral_tree(panel))
    return torch.as_tensor(out)


def _box_near_sum(xs: Array, tree: cKDTree, corners: Array, log_w: Array) -> Array:
    half_diag = _SPIRAL_BOX / math.sqrt(2.0)
    d, _ = tree.query(xs)
    radius = half_diag + np.sqrt((d + half_diag) ** 2 + 60.0 * _SPIRAL_STD**2)
    near = tree.query_ball_point(xs, radius)
    counts = np.array([len(v) for v in near])
    pt = np.repeat(np.arange(len(xs)), counts)
    node = np.concatenate([np.asarray(v, dtype=np.int64) for v in near])
    z = xs[pt] - corners[node]
    terms = log_w[node] + _log_box_gauss(z, _SPIRAL_BOX, _SPIRAL_STD).sum(-1)
    mx = np.full(len(xs), -np.inf)
    np.maximum.at(mx, pt, terms)
    acc = np.zeros(len(xs))
    np.add.at(acc, pt, np.exp(terms - mx[pt]))
    return mx + np.log(acc)


def _box_curve_log_prob(x: Tensor, nodes: _Nodes, cell: float = 0.3) -> Tensor:
    """log sum_m w_m k(x - c_m), k the box-jitter-plus-Gaussian kernel of 2spirals.

    Points are binned into square cells; a cell only looks at boxes whose centre lies within
    w/2 + 7 std (in every coordinate) of the cell. A box farther away contributes less than
    Phi(-7) / w^2 < e^-21 per unit weight, so the caller recomputes points whose density comes
    out below e^-15 in log space (:func:`_box_curve_log_prob_far`).
    """
    width, std = _SPIRAL_BOX, _SPIRAL_STD
    xs = x.numpy()
    c = nodes.points.numpy()
    w = np.exp(nodes.log_w.numpy())
    centre = c + width / 2.0
    reach = width / 2.0 + 7.0 * std
    key = np.floor(xs / cell).astype(np.int64)
    order = np.lexsort((key[:, 1], key[:, 0]))
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, (np.diff(sorted_key, axis=0) != 0).any(axis=1)])
    ends = np.r_[starts[1:], len(order)]
    dens = np.zeros(len(xs))
    for s0, s1 in zip(starts, ends, strict=True):
        lo = sorted_key[s0] * cell - reach
        near = np.flatnonzero(((centre >= lo) & (centre <= lo + cell + 2 * reach)).all(axis=1))
        if len(near) == 0:
            continue
        idx = order[s0:s1]
        prod = np.ones((len(idx), len(near)))
        for d in range(2):
            hi = (xs[idx, d, None] - c[near, d][None]) / std
            prod *= ndtr(hi) - ndtr(hi - width / std)
        dens[idx] = prod @ w[near]
    with np.errstate(divide="ignore"):
        out = np.log(dens) - 2.0 * math.log(width)
    return torch.as_tensor(out)


def _log_prob_2spirals(x: Tensor) -> Tensor:
    out = _box_curve_log_prob(x, _spiral_nodes(_COARSE * _SPIRAL_STD))
    low = ~(out > -15.0)
    if low.any():
        out[low] = _box_curve_log_prob_far(x[low])
    return out


def _pinwheel_log_prob(x: Tensor, min_grid: int = 512, iters: int = 40) -> Tensor:
    """Exact pinwheel density by change of variables, summed over all preimages.

    A sample is y = 2 R(-a) f with f ~ N((1, 0), diag(0.3^2, 0.1^2)), arm k uniform in 0..4 and
    a = 2 pi k / 5 + 0.25 exp(f_0). Write u = y / 2 in polar form (r, theta). Since a rotation
    keeps the norm, |f| = r, and with f = r (cos phi, sin phi) the preimages solve
    phi - 0.25 exp(r cos phi) - theta = 2 pi k / 5 + 2 pi m. As k and m range over the integers
    the right side covers all multiples of 2 pi / 5, so we bracket every crossing of
    L(phi) = 5 (phi - 0.25 exp(r cos phi) - theta) / (2 pi) with an integer on a fine grid of
    phi in [0, 2 pi] and bisect. The Jacobian of f -> u is 1 + 0.25 f_1 exp(f_0), and y = 2 u
    adds log 4. Every arm is hit at least once (L rises by exactly 5 over a turn). The grid is
    fine enough that L moves by at most 0.1 per step, so no pair of roots is missed; it grows
    like r exp(r), so it is capped at 2^18 points (|y| > 16, log density below about -400).
    """
    u = (x / 2.0).numpy()
    r = np.linalg.norm(u, axis=1)
    theta = np.arctan2(u[:, 1], u[:, 0])
    steepest = (PIN_ARMS / (2 * np.pi)) * (1.0 + PIN_RATE * r * np.exp(np.minimum(r, 20.0)))
    need = np.clip(2 * np.pi * steepest / 0.1, min_grid, 2**18)
    grids = 2 ** np.ceil(np.log2(need)).astype(np.int64)
    out = np.full(len(r), -np.inf)  # |y| > 60: the density underflows (log density < -5000)
    for grid in np.unique(grids[r <= 30.0]):
        sel = np.flatnonzero((grids == grid) & (r <= 30.0))
        out[sel] = _pinwheel_roots(r[sel], theta[sel], int(grid), iters)
    out = out - math.log(PIN_ARMS) - math.log(4.0)
    return torch.as_tensor(out, dtype=torch.float64)


def _pinwheel_roots(r: Array, theta: Array, grid: int, iters: int) -> Array:
    """log of the density of u = y / 2 summed over arms, before the 1/5 and 1/4 factors."""
    phi = np.linspace(0.0, 2.0 * np.pi, grid + 1)
    scale = PIN_ARMS / (2.0 * np.pi)

    def level(p: Array, rr: Array, th: Array) -> Array:
        return scale * (p - PIN_RATE * np.exp(rr * np.cos(p)) - th)

    out = np.empty(len(r))
    step = max(1, _CHUNK_ELEMENTS // (grid + 1))
    for i in range(0, len(r), step):
        rb, tb = r[i : i + step, None], theta[i : i + step, None]
        L = level(phi[None], rb, tb)
        fl = np.floor(L)
        lo_f, hi_f = np.minimum(fl[:, :-1], fl[:, 1:]), np.maximum(fl[:, :-1], fl[:, 1:])
        count = (hi_f - lo_f).astype(np.int64)  # integers crossed in each grid interval
        pt, seg = np.nonzero(count)
        reps = count[pt, seg]
        pt, seg = np.repeat(pt, reps), np.repeat(seg, reps)
        offset = np.arange(len(pt)) - np.repeat(np.cumsum(reps) - reps, reps)
        target = lo_f[pt, seg] + 1 + offset
        a, b = phi[seg].copy(), phi[seg + 1].copy()
        rr, th = rb[pt, 0], tb[pt, 0]
        rising = L[pt, seg + 1] > L[pt, seg]
        for _ in range(iters):
            m = 0.5 * (a + b)
            above = level(m, rr, th) >= target
            go_left = above == rising
            b = np.where(go_left, m, b)
            a = np.where(go_left, a, m)
        p = 0.5 * (a + b)
        f0, f1 = rr * np.cos(p), rr * np.sin(p)
        jac = np.abs(1.0 + PIN_RATE * f1 * np.exp(f0))
        logc = (
            -0.5 * ((f0 - 1.0) / PIN_RADIAL) ** 2
            - 0.5 * (f1 / PIN_TANGENTIAL) ** 2
            - _LOG_2PI
            - math.log(PIN_RADIAL * PIN_TANGENTIAL)
            - np.log(jac)
        )
        nb = len(rb)
        mx = np.full(nb, -np.inf)
        np.maximum.at(mx, pt, logc)
        acc = np.zeros(nb)
        np.add.at(acc, pt, np.exp(logc - mx[pt]))
        out[i : i + step] = mx + np.log(acc)
    return out


_LOG_PROBS: dict[str, Callable[[Tensor], Tensor]] = {
    "swissroll": _log_prob_swissroll,
    "circles": _log_prob_circles,
    "moons": _log_prob_moons,
    "8gaussians": _log_prob_8gaussians,
    "25gaussians": _log_prob_25gaussians,
    "rings": _log_prob_rings,
    "pinwheel": _pinwheel_log_prob,
    "2spirals": _log_prob_2spirals,
    "checkerboard": _log_prob_checkerboard,
}


def toy_log_prob(name: str, x: Tensor) -> Tensor:
    """Per-point true log density (nats, float64) of the toy ``name`` at ``x`` shaped (n, 2)."""
    x64 = x.detach().to(device="cpu", dtype=torch.float64).contiguous()
    if x64.shape[0] == 0:
        return torch.empty(0, dtype=torch.float64)
    return _LOG_PROBS[name](x64)
