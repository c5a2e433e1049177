"""Pure maths of Gaussian mixtures fitted by EM: log densities, sufficient statistics, M-step.

Every function is a small torch function with the shapes in its docstring; nothing here holds
state (``check_log_likelihood`` is the guard every EM step runs on its E-step's result). ``k``
is the number of components, ``d`` the dimension of an example, ``n`` a number of examples.
Covariance types are described by a ``CovarianceForm`` (one per type, in ``FORMS``:
full, diag, tied (one d x d matrix shared by all components) and spherical (var_k I)), so
adding a type means adding one entry, not editing the EM loop.

Statistics are accumulated around a per-component *shift* c_k (the current means during
EM): ``N_k = sum_n r_nk``, ``S1_k = sum_n r_nk (x_n - c_k)`` and
``S2_k = sum_n r_nk (x_n - c_k)(x_n - c_k)^T``, so the M-step needs no second pass over the
data, and ``S2_k / N_k - delta_k delta_k^T`` (delta_k the new mean minus c_k, small) loses
nothing to cancellation, even in float32, unlike raw moments ``sum r x x^T``.
Log densities are computed as ||x U_k - mu_k U_k||^2 with U_k the Cholesky factor of the
precision, as one matrix product for all components.

References:
    Dempster, Laird & Rubin (1977). Maximum likelihood from incomplete data via the EM
    algorithm. JRSS B 39(1).
    Arthur & Vassilvitskii (2007). k-means++: the advantages of careful seeding. SODA.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from genzoo.errors import TrainingDiverged
from genzoo.validation import check_finite

LOG_2PI = math.log(2.0 * math.pi)
#: Sufficient statistics and the M-step are computed in float64 whatever the model dtype.
STATS_DTYPE = torch.float64


# -- log densities ---------------------------------------------------------------------------
def sum_last(y: Tensor) -> Tensor:
    """Sum over the last axis, (..., d) -> (...); adds slices when d is small (faster)."""
    if y.shape[-1] > 4:
        return y.sum(-1)
    out = y[..., 0].clone()
    for j in range(1, y.shape[-1]):
        out += y[..., j]
    return out


def gaussian_log_prob_full(x: Tensor, means: Tensor, prec_chol: Tensor) -> Tensor:
    """Log density of each example under each full-covariance Gaussian.

    x (n,d), means (k,d), prec_chol (k,d,d) -> (n,k). ``prec_chol`` is the upper factor U
    with U U^T = Sigma^-1 (U = L^-T for the Cholesky factor L of Sigma), so that
    ||x U - mu U||^2 is the Mahalanobis distance: one (n,d) x (d,k*d) matrix product.
    """
    n, d = x.shape
    k = means.shape[0]
    u = prec_chol.permute(1, 0, 2).reshape(d, k * d)  # (d, k*d): [U_1 | ... | U_k]
    shift = torch.bmm(means.unsqueeze(1), prec_chol).reshape(k * d)  # (k*d,): mu_k U_k
    y = torch.addmm(shift, x, u, alpha=1, beta=-1)  # (n, k*d): x U_k - mu_k U_k
    maha = sum_last(y.square_().view(n, k, d))  # (n,k)
    log_det = prec_chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (k,) = -0.5 log|Sigma|
    return torch.add(log_det - 0.5 * d * LOG_2PI, maha, alpha=-0.5)


def gaussian_log_prob_diag(x: Tensor, means: Tensor, prec_chol: Tensor) -> Tensor:
    """Log density of each example under each diagonal Gaussian.

    x (n,d), means (k,d), prec_chol (k,d) = 1/std -> (n,k) in x's dtype. The squared
    distance is expanded, x^2 . p - 2 x . (mu p) + mu^2 . p with p = 1/var, into two
    (n,d) x (d,k) matrix products done in float64, so the cancellation of the expansion
    costs nothing measurable (centre x near the data first).
    """
    d = x.shape[1]
    x64, mu = x.to(torch.float64), means.to(torch.float64)
    prec = prec_chol.to(torch.float64).square()  # (k,d)
    maha = x64.square() @ prec.T - 2 * (x64 @ (mu * prec).T) + (mu.square() * prec).sum(1)
    log_det = prec_chol.to(torch.float64).log().sum(-1)  # (k,)
    out = torch.add(log_det - 0.5 * d * LOG_2PI, maha.clamp_min_(0.0), alpha=-0.5)
    return out.to(x.dtype)


def log_normalize(log_p: Tensor) -> tuple[Tensor, Tensor]:
    """Responsibilities and log-normaliser by log-sum-exp over components.

    log_p (n,k) = log pi_k + log N(x_n | k), overwritten -> resp (n,k), log p(x_n) (n,).
    (Fewer passes over memory than ``torch.logsumexp`` followed by ``exp``.)
    """
    top = log_p.amax(1, keepdim=True)  # (n,1)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    resp = log_p.sub_(top).exp_()
    total = resp.sum(1, keepdim=True)  # (n,1)
    resp.div_(total)
    return resp, (top + total.log()).squeeze(1)


# -- sufficient statistics -------------------------------------------------------------------
def _statistics_full(x: Tensor, resp: Tensor, shift: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """N (k,), S1 (k,d), S2 (k,d,d) centred on shift (k,d): x (n,d), resp (n,k).

    One component at a time, two matrix products each, in x's dtype: centring on the
    current means first keeps float32 accurate (no raw moments).
    """
    s1, s2 = [], []
    for j in range(resp.shape[1]):
        diff = x - shift[j]  # (n,d)
        r = resp[:, j]  # (n,)
        s1.append(r @ diff)
        s2.append(diff.T @ (diff * r.unsqueeze(1)))
    f64 = torch.float64
    return resp.sum(0, dtype=f64), torch.stack(s1).to(f64), torch.stack(s2).to(f64)


def _statistics_diag(x: Tensor, resp: Tensor, shift: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """N (k,), S1 (k,d), S2 (k,d) (diagonal) centred on shift (k,d): x (n,d), resp (n,k).

    Raw moments by two (k,n) x (n,d) matrix products in float64, then re-centred; float64
    makes the re-centring exact enough for data centred near its mean.
    """
    x64, r64, c = x.to(torch.float64), resp.to(torch.float64), shift.to(torch.float64)
    nk = r64.sum(0)  # (k,)
    sx = r64.T @ x64  # (k,d)
    sxx = r64.T @ x64.square()  # (k,d)
    s1 = sx - nk.unsqueeze(1) * c
    s2 = sxx - 2 * c * sx + nk.unsqueeze(1) * c.square()
    return nk, s1, s2


# -- M-step: covariances from statistics -----------------------------------------------------
def _covariance_full(nk: Tensor, delta: Tensor, s2: Tensor, reg_covar: float) -> Tensor:
    """Sigma_k = S2_k / N_k - delta_k delta_k^T + reg I: nk (k,), delta (k,d), s2 (k,d,d)."""
    cov = s2 / nk[:, None, None] - delta.unsqueeze(2) * delta.unsqueeze(1)
    cov = 0.5 * (cov + cov.transpose(1, 2))
    cov.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
    return cov


def _covariance_diag(nk: Tensor, delta: Tensor, s2: Tensor, reg_covar: float) -> Tensor:
    """var_k = S2_k / N_k - delta_k^2 + reg: nk (k,), delta (k,d), s2 (k,d) -> (k,d)."""
    return (s2 / nk[:, None] - delta.square()).clamp_min(0.0) + reg_covar


# -- factorisations ---------------------------------------------------------------------------
def precision_cholesky_full(cov: Tensor) -> Tensor:
    """Upper factor U of each precision (U U^T = Sigma^-1, U = L^-T): cov (k,d,d) -> (k,d,d).

    Raises ``ValueError`` naming the components whose covariance is not positive definite.
    """
    chol, info = torch.linalg.cholesky_ex(cov)
    if bool((info > 0).any()):
        bad = (info > 0).nonzero().flatten().tolist()
        raise ValueError(
            f"the covariance of mixture component(s) {bad} is not positive definite (a "
            "component collapsed onto too few points): increase reg_covar, lower "
            "n_components, or scale the data"
        )
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device).expand_as(cov)
    return torch.linalg.solve_triangular(chol, eye, upper=False).transpose(1, 2)


def precision_cholesky_diag(var: Tensor) -> Tensor:
    """1/std of each coordinate: var (k,d) -> (k,d); refuses non-positive variances."""
    if bool((var <= 0).any()):
        raise ValueError(
            "a diagonal variance is not positive: increase reg_covar or scale the data"
        )
    return var.rsqrt()


def _statistics_tied(x: Tensor, resp: Tensor, shift: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """N (k,), S1 (k,d), S2 (d,d) = sum_k S2_k (one pooled matrix): x (n,d), resp (n,k)."""
    nk, s1, s2 = _statistics_full(x, resp, shift)
    return nk, s1, s2.sum(0)


def _statistics_spherical(x: Tensor, resp: Tensor, shift: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """N (k,), S1 (k,d), S2_k = sum_n r_nk ||x_n - c_k||^2 (k,): x (n,d), resp (n,k)."""
    nk, s1, s2 = _statistics_diag(x, resp, shift)
    return nk, s1, s2.sum(1)


def _covariance_tied(nk: Tensor, delta: Tensor, s2: Tensor, reg_covar: float) -> Tensor:
    """Sigma = (S2 - sum_k N_k delta_k delta_k^T) / sum_k N_k + reg I: s2 (d,d) -> (d,d)."""
    cov = (s2 - (nk[:, None] * delta).T @ delta) / nk.sum()
    cov = 0.5 * (cov + cov.T)
    cov.diagonal().add_(reg_covar)
    return cov


def _covariance_spherical(nk: Tensor, delta: Tensor, s2: Tensor, reg_covar: float) -> Tensor:
    """var_k = (S2_k / N_k - ||delta_k||^2) / d + reg: s2 (k,) -> (k,)."""
    d = delta.shape[1]
    return ((s2 / nk - delta.square().sum(1)) / d).clamp_min(0.0) + reg_covar


def _log_prob_tied(x: Tensor, means: Tensor, prec_chol: Tensor) -> Tensor:
    """x (n,d), means (k,d), one shared prec_chol (d,d) -> (n,k)."""
    return gaussian_log_prob_full(x, means, prec_chol.expand(means.shape[0], -1, -1))


def _log_prob_spherical(x: Tensor, means: Tensor, prec_chol: Tensor) -> Tensor:
    """x (n,d), means (k,d), prec_chol (k,) = 1/std -> (n,k)."""
    return gaussian_log_prob_diag(x, means, prec_chol.unsqueeze(1).expand_as(means))


def _second_moment(kind: str):
    """S2 of the statistics centred on the means whose M-step gives ``cov`` (minus reg).

    (nk (k,), cov, reg_covar, d) -> S2: the inverse of ``covariance`` at delta = 0, used by
    online EM to turn the current parameters back into (averaged) sufficient statistics.
    """

    def full(nk: Tensor, cov: Tensor, reg: float, d: int) -> Tensor:
        eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
        return nk[:, None, None] * (cov - reg * eye)

    def tied(nk: Tensor, cov: Tensor, reg: float, d: int) -> Tensor:
        return nk.sum() * (cov - reg * torch.eye(d, dtype=cov.dtype, device=cov.device))

    def diag(nk: Tensor, cov: Tensor, reg: float, d: int) -> Tensor:
        return nk[:, None] * (cov - reg)

    def spherical(nk: Tensor, cov: Tensor, reg: float, d: int) -> Tensor:
        return nk * d * (cov - reg)

    return {"full": full, "tied": tied, "diag": diag, "spherical": spherical}[kind]


def _noise_full(z: Tensor, scale: Tensor) -> Tensor:
    """A z for one component: z (n,d), scale (d,d) with A A^T = covariance -> (n,d)."""
    return z @ scale.T


def sampling_scale(cov: Tensor) -> Tensor:
    """A matrix ``A`` with ``A A^T = cov`` for drawing ``A z`` (a batch of matrices too): the
    Cholesky factor, or, where rounding left a covariance not positive definite in its
    dtype (a component on a few points of data at scale 1e6), the symmetric square root with
    negative eigenvalues clamped to zero."""
    factor, info = torch.linalg.cholesky_ex(cov)
    if not bool((info != 0).any()):
        return factor
    values, vectors = torch.linalg.eigh(cov)
    return vectors * values.clamp_min(0).sqrt().unsqueeze(-2)


def _noise_diag(z: Tensor, scale: Tensor) -> Tensor:
    """std * z for one component: z (n,d), scale (d,) -> (n,d)."""
    return z * scale


@dataclass(frozen=True)
class CovarianceForm:
    """Everything EM needs to know about one covariance type.

    Attributes:
        shape: (k, d) -> shape of the covariance (and precision-Cholesky) buffer.
        log_prob: x (n,d), means (k,d), prec_chol -> log N(x_n | k) (n,k).
        statistics: x (n,d), resp (n,k), shift (k,d) -> N (k,), S1 (k,d), S2 in float64.
        covariance: nk (k,), delta (k,d), S2, reg_covar -> covariances.
        precision_cholesky: covariances -> precision Cholesky factors.
        precisions: precision Cholesky factors -> precisions (scikit-learn's precisions_init).
        identity: (k, d) -> unit covariances (the placeholder before initialisation).
        second_moment: nk (k,), covariances, reg_covar, d -> S2 centred on the means.
        scale: (covariances, k) -> per-component sampling scales, indexed by component.
        noise: z (n,d), scale of one component -> scaled noise (n,d).
        n_cov_parameters: (k, d) -> free parameters in the covariances.
        row_size: (k, d) -> numbers per row in the largest chunk intermediate.
    """

    shape: Callable[[int, int], tuple[int, ...]]
    log_prob: Callable[[Tensor, Tensor, Tensor], Tensor]
    statistics: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]
    covariance: Callable[[Tensor, Tensor, Tensor, float], Tensor]
    precision_cholesky: Callable[[Tensor], Tensor]
    precisions: Callable[[Tensor], Tensor]
    identity: Callable[[int, int], Tensor]
    second_moment: Callable[[Tensor, Tensor, float, int], Tensor]
    scale: Callable[[Tensor, int], Tensor]
    noise: Callable[[Tensor, Tensor], Tensor]
    n_cov_parameters: Callable[[int, int], int]
    row_size: Callable[[int, int], int]


FORMS: dict[str, CovarianceForm] = {
    "full": CovarianceForm(
        shape=lambda k, d: (k, d, d),
        log_prob=gaussian_log_prob_full,
        statistics=_statistics_full,
        covariance=_covariance_full,
        precision_cholesky=precision_cholesky_full,
        precisions=lambda u: u @ u.transpose(1, 2),
        identity=lambda k, d: torch.eye(d).expand(k, d, d).clone(),
        second_moment=_second_moment("full"),
        scale=lambda cov, k: sampling_scale(cov),
        noise=_noise_full,
        n_cov_parameters=lambda k, d: k * d * (d + 1) // 2,
        row_size=lambda k, d: k * d,
    ),
    "diag": CovarianceForm(
        shape=lambda k, d: (k, d),
        log_prob=gaussian_log_prob_diag,
        statistics=_statistics_diag,
        covariance=_covariance_diag,
        precision_cholesky=precision_cholesky_diag,
        precisions=lambda prec_chol: prec_chol.square(),
        identity=lambda k, d: torch.ones(k, d),
        second_moment=_second_moment("diag"),
        scale=lambda cov, k: cov.sqrt(),
        noise=_noise_diag,
        n_cov_parameters=lambda k, d: k * d,
        row_size=lambda k, d: max(k, d),
    ),
    "tied": CovarianceForm(
        shape=lambda k, d: (d, d),
        log_prob=_log_prob_tied,
        statistics=_statistics_tied,
        covariance=_covariance_tied,
        precision_cholesky=lambda cov: precision_cholesky_full(cov.unsqueeze(0))[0],
        precisions=lambda u: u @ u.T,
        identity=lambda k, d: torch.eye(d),
        second_moment=_second_moment("tied"),
        scale=lambda cov, k: sampling_scale(cov).expand(k, -1, -1),
        noise=_noise_full,
        n_cov_parameters=lambda k, d: d * (d + 1) // 2,
        row_size=lambda k, d: k * d,
    ),
    "spherical": CovarianceForm(
        shape=lambda k, d: (k,),
        log_prob=_log_prob_spherical,
        statistics=_statistics_spherical,
        covariance=_covariance_spherical,
        precision_cholesky=precision_cholesky_diag,
        precisions=lambda prec_chol: prec_chol.square(),
        identity=lambda k, d: torch.ones(k),
        second_moment=_second_moment("spherical"),
        scale=lambda cov, k: cov.sqrt(),
        noise=_noise_diag,
        n_cov_parameters=lambda k, d: k,
        row_size=lambda k, d: max(k, d),
    ),
}


# -- E-step statistics and M-step --------------------------------------------------------------
def chunk_statistics(
    x: Tensor, resp: Tensor, shift: Tensor, form: CovarianceForm
) -> tuple[Tensor, Tensor, Tensor]:
    """Sufficient statistics of one chunk (E-step of Dempster et al. 1977), in float64.

    x (n,d), resp (n,k), shift (k,d) one point per component (the current means in EM)
    -> N (k,), S1_k = sum_n r_nk (x_n - c_k) (k,d), S2_k = sum_n r_nk (x_n - c_k)(..)^T
    (k,d,d), its diagonal (k,d), their sum over k (d,d, tied) or trace (k,, spherical).
    """
    return form.statistics(x, resp, shift)


def m_step(
    nk: Tensor,
    s1: Tensor,
    s2: Tensor,
    shift: Tensor,
    n: int,
    reg_covar: float,
    form: CovarianceForm,
) -> tuple[Tensor, Tensor, Tensor]:
    """Maximum-likelihood weights, means and covariances from shifted statistics.

    nk (k,), s1 (k,d), s2, shift (k,d) the points the statistics are centred on, n
    examples -> weights (k,), means (k,d), covariances. Empty components get N_k = 10 eps
    (they keep the shift as mean and get reg_covar times the identity as covariance).
    """
    nk = nk + 10 * torch.finfo(nk.dtype).eps
    delta = s1 / nk.unsqueeze(1)  # (k,d): new mean minus shift
    weights = nk / n
    weights = weights / weights.sum()
    return weights, shift + delta, form.covariance(nk, delta, s2, reg_covar)


# -- k-means++ seeding and Lloyd iterations ---------------------------------------------------
def squared_distances(x: Tensor, centers: Tensor) -> Tensor:
    """||x_n - c_j||^2: x (n,d), centers (k,d) -> (n,k), clamped at 0."""
    d2 = x.square().sum(1, keepdim=True) - 2 * x @ centers.T + centers.square().sum(1)
    return d2.clamp_min_(0.0)


def _draw_index(weights: Tensor, u: Tensor) -> Tensor:
    """Indices drawn proportionally to ``weights`` (n,) from uniforms ``u`` (t,) -> (t,)."""
    cdf = weights.cumsum(0)
    idx = torch.searchsorted(cdf, u.to(cdf) * cdf[-1], right=True)
    return idx.clamp_(max=weights.shape[0] - 1)


def kmeans_plusplus(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007), greedy: x (n,d) -> centers (k,d).

    Each new center is the best of ``2 + log k`` candidates drawn with probability
    proportional to the squared distance to the nearest chosen center. ``generator`` is a
    CPU generator; only uniforms are drawn from it, so the seeding does not depend on the
    device of ``x`` (up to rounding).
    """
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    first = int(torch.randint(n, (1,), generator=generator))
    centers = [x[first]]
    closest = (x - x[first]).square().sum(1)  # (n,)
    for _ in range(1, k):
        u = torch.rand(trials, generator=generator, dtype=torch.float64)
        if float(closest.sum()) > 0:
            cand = _draw_index(closest, u.to(x.device))
        else:  # fewer distinct points than k: any point will do
            cand = (u * n).long().clamp_(max=n - 1).to(x.device)
        d_cand = torch.minimum(closest.unsqueeze(0), squared_distances(x, x[cand]).T)
        best = int(d_cand.sum(1).argmin())
        centers.append(x[cand[best]])
        closest = d_cand[best]
    return torch.stack(centers)


def lloyd(x: Tensor, centers: Tensor, steps: int, chunk: int) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means iterations: x (n,d), centers (k,d) -> (centers (k,d), labels (n,)).

    ``labels`` are the nearest of the returned ``centers``. Stops early when no label
    changes; an empty cluster keeps its previous center.
    """
    k = centers.shape[0]

    def assign(c: Tensor) -> Tensor:
        return torch.cat([squared_distances(part, c).argmin(1) for part in x.split(chunk)])

    labels = assign(centers)
    for _ in range(steps):
        counts = torch.bincount(labels, minlength=k).to(x.dtype).unsqueeze(1)  # (k,1)
        sums = torch.zeros_like(centers).index_add_(0, labels, x)
        centers = torch.where(counts > 0, sums / counts.clamp_min(1), centers)
        new = assign(centers)
        if torch.equal(new, labels):
            break
        labels = new
    return centers, labels


# -- the guard --------------------------------------------------------------------------------
def check_log_likelihood(value: float, data: Tensor, what: str, step: str) -> None:
    """Stop EM at ``step`` when the log-likelihood ``value`` is not finite: ``DataError`` if
    ``data`` (called ``what``) hold NaN or inf, else ``TrainingDiverged`` (a component
    collapsed or the data are far too large)."""
    if not math.isfinite(value):
        check_finite(data, what)
        raise TrainingDiverged(
            f"{step}: the log-likelihood is {value}; increase reg_covar or scale the data"
        )
