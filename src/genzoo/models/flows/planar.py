"""Planar and radial flows, fitted by reverse KL to an unnormalised target density.

References:
    Rezende & Mohamed, "Variational inference with normalizing flows", ICML 2015
    (arXiv:1505.05770): planar flow eq. (10)-(12), radial flow eq. (14), the invertibility
    conditions of appendix A, the free energy of eq. (15) and the targets of table 1.

These transforms act in the generative direction: ``z_k = f_k(z_{k-1})`` from base noise
``z_0 ~ N(0, I)``, with ``log q_K(z_K) = log q_0(z_0) - sum_k log|det df_k/dz_{k-1}|``
(eq. 13). They have no closed-form inverse, but each is invertible (appendix A) and
reduces to a scalar equation: the radial one has a closed-form root, the planar one a
monotone root found by bisection. That numerical inverse gives ``log_prob`` of any point
(to float precision) and maximum-likelihood training on data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.data import targets
from genzoo.errors import DataError
from genzoo.models.base import GenerativeModel
from genzoo.models.flows.base import standard_normal_log_prob
from genzoo.registry import register_model

#: Bisection steps of the planar inverse; each halves an interval of width ``2|w.u|``.
BISECTION_STEPS = 60


class PlanarTransform(nn.Module):
    """``n_layers`` planar maps ``f(z) = z + u_hat * tanh(w.z + b)`` (eq. 10), in order.

    ``log|det| = log|1 + u_hat.psi(z)|`` with ``psi(z) = tanh'(w.z + b) w`` (eq. 11-12).
    ``u_hat = u + (m(w.u) - w.u) w / |w|^2`` with ``m(a) = -1 + softplus(a)`` keeps
    ``w.u_hat > -1``, so each map is invertible (appendix A). The layers' parameters are
    stacked (``u``, ``w``: ``(n_layers, d)``; ``b``: ``(n_layers,)``), which keeps a long
    chain fast. ``(batch, d)`` tensors.
    """

    def __init__(self, features: int, n_layers: int = 1) -> None:
        super().__init__()
        self.u = nn.Parameter(0.1 * torch.randn(n_layers, features))
        self.w = nn.Parameter(0.1 * torch.randn(n_layers, features))
        self.b = nn.Parameter(torch.zeros(n_layers))

    def u_hat(self) -> tuple[Tensor, Tensor]:
        """The constrained ``u`` of appendix A ``(n_layers, d)`` and ``w.u_hat`` ``(n_layers,)``."""
        wu = (self.w * self.u).sum(1)
        w_sq = self.w.square().sum(1).clamp_min(1e-12)
        u = self.u + ((-1 + F.softplus(wu) - wu) / w_sq)[:, None] * self.w
        return u, (self.w * u).sum(1)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(f(z), log|det df/dz|)`` shaped ``(batch, d), (batch,)``."""
        u, c = self.u_hat()
        hs = []
        for k in range(len(self.b)):
            h = torch.tanh(z @ self.w[k] + self.b[k])
            z = z + h[:, None] * u[k]
            hs.append(h)
        h = torch.stack(hs, dim=1)  # (batch, n_layers): the log-dets in one go
        return z, torch.log((1 + (1 - h.square()) * c).abs()).sum(1)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(f^-1(y), log|det df^-1/dy|)``: per map, solve ``a + c tanh(a + b) = w.y``.

        ``a = w.z`` and ``c = w.u_hat > -1`` make the left side increasing in ``a``, which
        lies within ``|c|`` of ``w.y``, so bisection finds it; one Newton step from that
        root, taken with gradients on, gives the implicit-function gradient for maximum
        likelihood. Then ``z = y - u_hat tanh(a + b)``.
        """
        u, cs = self.u_hat()
        ladj = y.new_zeros(y.shape[0])
        for k in reversed(range(len(self.b))):
            c, b, t = cs[k], self.b[k], y @ self.w[k]
            with torch.no_grad():
                lo, hi = t - c.abs() - 1e-6, t + c.abs() + 1e-6
                for _ in range(BISECTION_STEPS):
                    mid = 0.5 * (lo + hi)
                    above = mid + c * torch.tanh(mid + b) > t
                    lo, hi = torch.where(above, lo, mid), torch.where(above, mid, hi)
                a = 0.5 * (lo + hi)
            h = torch.tanh(a + b)
            a = a - (a + c * h - t) / (1 + c * (1 - h.square()))  # Newton step: gradients
            h = torch.tanh(a + b)
            y = y - h[:, None] * u[k]
            ladj = ladj - torch.log((1 + (1 - h.square()) * c).abs())
        return y, ladj


class RadialTransform(nn.Module):
    """``n_layers`` radial maps ``f(z) = z + beta h (z - z0)``, ``h = 1/(alpha + r)`` (eq. 14).

    ``r = |z - z0|``; ``log|det| = (d-1) log(1 + beta h) + log(1 + beta h + beta h' r)``.
    ``alpha = softplus(.) > 0`` and ``beta = -alpha + softplus(.) >= -alpha`` keep each map
    invertible (appendix A); the inverse is closed-form, since
    ``|f(z) - z0| = r (1 + beta / (alpha + r))`` is a quadratic in ``r``. Parameters are
    stacked over layers (``z0``: ``(n_layers, d)``). ``(batch, d)`` tensors.
    """

    def __init__(self, features: int, n_layers: int = 1) -> None:
        super().__init__()
        self.z0 = nn.Parameter(torch.randn(n_layers, features))
        self.alpha_raw = nn.Parameter(torch.zeros(n_layers))
        self.beta_raw = nn.Parameter(torch.zeros(n_layers))

    def coefficients(self) -> tuple[Tensor, Tensor]:
        """``(alpha, beta)``, each ``(n_layers,)``, with ``alpha > 0`` and ``beta >= -alpha``."""
        alpha = F.softplus(self.alpha_raw)
        return alpha, -alpha + F.softplus(self.beta_raw)

    @staticmethod
    def _log_det(r: Tensor, alpha: Tensor, beta: Tensor, d: int) -> Tensor:
        bh = beta / (alpha + r)
        return (d - 1) * torch.log1p(bh) + torch.log1p(bh - beta * r / (alpha + r) ** 2)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(f(z), log|det df/dz|)`` shaped ``(batch, d), (batch,)``."""
        alpha, beta = self.coefficients()
        ladj = z.new_zeros(z.shape[0])
        for k in range(len(alpha)):
            diff = z - self.z0[k]
            r = diff.norm(dim=1)
            ladj = ladj + self._log_det(r, alpha[k], beta[k], z.shape[1])
            z = z + (beta[k] / (alpha[k] + r))[:, None] * diff
        return z, ladj

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(f^-1(y), log|det df^-1/dy|)`` in closed form."""
        alpha, beta = self.coefficients()
        ladj = y.new_zeros(y.shape[0])
        for k in reversed(range(len(alpha))):
            diff = y - self.z0[k]
            rho = diff.norm(dim=1)
            p = alpha[k] + beta[k] - rho  # r^2 + p r - alpha rho = 0; its root r >= 0
            r = 0.5 * (-p + torch.sqrt(p.square() + 4 * alpha[k] * rho))
            y = self.z0[k] + diff / (1 + beta[k] / (alpha[k] + r))[:, None]
            ladj = ladj - self._log_det(r, alpha[k], beta[k], y.shape[1])
        return y, ladj


class _TargetFlow(GenerativeModel):
    """Base of planar and radial flows: a chain of transforms applied to ``N(0, I)`` noise.

    Its arguments (documented on :class:`PlanarFlow`) are those of both: a variant only
    names its transform, ``layer``.
    """

    density = "exact"
    layer: type[nn.Module]

    def __init__(
        self,
        data_shape: Sequence[int] = (2,),
        n_layers: int = 16,
        target: str = "",
        mc_samples: int = 256,
        anneal_steps: int = 0,
    ) -> None:
        super().__init__(data_shape)
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1; got {n_layers}")
        if mc_samples < 1 or anneal_steps < 0:
            raise ValueError(f"need mc_samples >= 1, anneal_steps >= 0; got {mc_samples=}, "
                             f"{anneal_steps=}")  # fmt: skip
        if target:
            if target not in targets.ENERGIES:
                targets.energy(target, torch.zeros(1, 2))  # raises with the valid names
            if self.data_shape != (2,):
                raise DataError(f"the targets are 2-D; got data_shape {self.data_shape}")
        self.target, self.mc_samples, self.anneal_steps = target, mc_samples, anneal_steps
        self.flow = self.layer(self.data_dim, n_layers)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    def sample_and_log_prob(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``z_K`` ``(n, *data_shape)`` and ``log q_K(z_K)`` ``(n,)`` by eq. (13), one pass."""
        z = torch.randn(n, self.data_dim, generator=generator, device=self.device, dtype=self.dtype)
        x, ladj = self.flow(z)
        return x.reshape(n, *self.data_shape), standard_normal_log_prob(z) - ladj

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` samples ``(n, *data_shape)``."""
        with torch.no_grad():
            return self.sample_and_log_prob(n, generator)[0]

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log q_K(x)`` per example (nats), by inverting every layer numerically."""
        z, ladj = self.flow.inverse(self.check_input(x).flatten(1))
        return standard_normal_log_prob(z) + ladj

    @property
    def needs_data(self) -> bool:
        """Fitted to a target density, the flow draws its own samples: no data needed."""
        return not self.target

    def annealing(self) -> float:
        """``beta_t = min(1, 0.01 + t / anneal_steps)`` of section 6.1 (1 without annealing)."""
        if self.anneal_steps == 0:
            return 1.0
        return min(1.0, 0.01 + int(self.steps_done) / self.anneal_steps)

    def loss(self, batch: Tensor | None, player: str = "model") -> dict[str, Tensor]:
        """Reverse KL to the target (``batch=None``), or maximum likelihood on ``batch``.

        The free energy of eq. (15) with the target ``exp(-U)``:
        ``F = E_q0[log q_K(z_K) + beta_t U(z_K)]``, ``KL(q || p) = F + log Z`` at ``beta_t = 1``.
        """
        if batch is not None:
            return {"nll": -self.log_prob(batch).mean()}
        if not self.target:
            raise ValueError(
                f"{self.name} got no data and has no target: pass target='u1'..'u4' "
                "(genzoo.fit_target) or train it on data"
            )
        z, log_q = self.sample_and_log_prob(self.mc_samples)
        u = targets.energy(self.target, z)
        return {"free_energy": (log_q + self.annealing() * u).mean(), "diag/energy": u.mean()}

    def after_step(self, player: str, step: int) -> None:
        """Count the steps taken, for the annealing schedule (saved with the model)."""
        self.steps_done += 1


@register_model("planar", family="flow")
class PlanarFlow(_TargetFlow):
    """Planar flow (Rezende & Mohamed 2015): ``n_layers`` planar maps of N(0, I) noise.

    Fitted by reverse KL to an unnormalised target (``target="u1"``..``"u4"``, see
    ``genzoo.fit_target``; ``mc_samples`` base draws per step, optional annealing over
    ``anneal_steps``), as in the paper, or by maximum likelihood on data. The density is
    exact: the samples' log density comes with them (eq. 13) and ``log_prob`` of any point
    inverts each layer by bisection on a monotone scalar equation (to float precision).

    Arguments:
        data_shape: shape of one example (``(2,)`` for the targets).
        n_layers: number of planar maps ``K``.
        target: name of the target energy, or ``""`` to train on data.
        mc_samples: Monte-Carlo base samples per step of reverse KL.
        anneal_steps: steps over which ``beta_t`` rises from 0.01 to 1 (0 = no annealing).

    Example:
        >>> flow = PlanarFlow(n_layers=4, target="u1")
        >>> z, log_q = flow.sample_and_log_prob(5)
        >>> z.shape, log_q.shape
        (torch.Size([5, 2]), torch.Size([5]))
    """

    layer = PlanarTransform


@register_model("radial", family="flow")
class RadialFlow(_TargetFlow):
    """Radial flow (Rezende & Mohamed 2015): ``n_layers`` radial maps of N(0, I) noise.

    Fitted by reverse KL to an unnormalised target (``target="u1"``..``"u4"``), as in the
    paper, or by maximum likelihood on data; each layer has a closed-form inverse, so
    ``log_prob`` of any point is exact.

    Arguments: those of :class:`PlanarFlow`, ``n_layers`` counting radial maps.

    Example:
        >>> flow = RadialFlow(n_layers=4, target="u2")
        >>> flow.sample(3).shape
        torch.Size([3, 2])
    """

    layer = RadialTransform


def reverse_kl(model: _TargetFlow, n: int = 100_000, seed: int = 0) -> dict[str, float]:
    """Monte-Carlo ``KL(q || p) = E_q[log q + U] + log Z`` of a model fitted to its target.

    Returns the KL (nats) with its standard error, the free energy and ``log Z``.
    """
    if not getattr(model, "target", ""):
        raise ValueError("the model has no target; reverse_kl needs one fitted to a target")
    generator = torch.Generator(device=model.device).manual_seed(seed)
    with torch.no_grad():
        z, log_q = model.sample_and_log_prob(n, generator)
        gap = (log_q + targets.energy(model.target, z)).double().cpu()
    log_z = targets.log_normalizer(model.target)
    return {
        "target": model.target,
        "reverse_kl": float(gap.mean()) + log_z,
        "reverse_kl_stderr": float(gap.std() / math.sqrt(n)),
        "free_energy": float(gap.mean()),
        "log_z": log_z,
    }
