"""Deep Gaussian mixture model (Viroli & McLachlan 2019): mixtures of factor analysers, stacked.

Layer l (1..h) maps z^(l) (r_l numbers) to z^(l-1) (r_{l-1}; z^(0) = x, r_0 = d) through one
of k_l linear Gaussian components, z^(l-1) = eta_j + Lambda_j z^(l) + u_j, u_j ~ N(0, Psi_j)
with Psi_j diagonal, chosen with probability pi_j; the top is z^(h) ~ N(0, I). Along a path
s = (s_1, .., s_h) x is Gaussian, so p(x) is a mixture over the prod_l k_l paths (eq. 4 of
the paper), evaluated exactly by log-sum-exp.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from genzoo.errors import DataError
from genzoo.models import em_shards
from genzoo.models import gmm_math as gm
from genzoo.models.base import GenerativeModel, model_fact
from genzoo.registry import register_model
from genzoo.validation import check_finite, check_shape

FITS = ("sem", "gradient")
LOG_2PI = math.log(2.0 * math.pi)
#: The EM statistics and M-step are computed in float64 whatever the model dtype.
EM_DTYPE = torch.float64
#: Cap on the numbers in one (rows, paths, d) intermediate of ``log_prob``.
CHUNK_ELEMENTS = 2**22


@register_model("deep-gmm", family="mixture")
class DeepGaussianMixture(GenerativeModel):
    """Deep Gaussian mixture (Viroli & McLachlan 2019): stacked factor-analyser mixtures.

    x = z^(0); for l = 1..h, z^(l-1) = eta^(l)_j + Lambda^(l)_j z^(l) + u^(l)_j with
    probability pi^(l)_j, u^(l)_j ~ N(0, Psi^(l)_j) diagonal, z^(h) ~ N(0, I) (eq. 3 of
    the paper). Given a path s = (s_1..s_h) of components, x ~ N(mu_s, Sigma_s) with
    mu_s = eta_{s_1} + Lambda_{s_1}(eta_{s_2} + Lambda_{s_2}(...)) and
    Sigma_s = Psi_{s_1} + Lambda_{s_1}(Psi_{s_2} + Lambda_{s_2}(...)Lambda_{s_2}^T)Lambda_{s_1}^T,
    and p(x) = sum_s prod_l pi_{s_l} N(x | mu_s, Sigma_s) (eq. 4): ``log_prob`` is this
    exact sum over all prod_l k_l paths, by log-sum-exp, in nats.

    Fitting (``fit``):

    - ``"sem"`` (default, no optimiser: each trainer step is one ``fit_step`` over the whole
      training set): stochastic EM after section 3 of the paper, one sweep over the layers
      from the data up per step. At layer l the input y is x (l = 1) or the z^(l-1) drawn
      at the layer below; the prior of z^(l) is the exact mixture over the paths of the
      layers above. E-step: the joint posterior
      of (s_l, upper path) and, given them, the Gaussian posterior of z^(l) (Kalman form);
      M-step: the closed-form mixture-of-factor-analysers update (Ghahramani & Hinton 1996)
      of pi_j, [Lambda_j, eta_j] = (sum r y E[z~]^T)(sum r E[z~ z~^T])^-1 with z~ = (z, 1),
      Psi_j = diag(sum r y y^T - [Lambda_j, eta_j] sum r E[z~] y^T) / N_j; S-step: one
      z^(l) per example is drawn from its posterior and becomes the data of layer l + 1.
      Layer 1's update is an exact EM step (the layers above held fixed; with one layer
      this is EM for a mixture of factor analysers, monotone); the layers above are fitted
      to draws, so the log-likelihood is not monotone, only improving on average.
    - ``"gradient"``: the trainer's Adam on the exact mean negative log-likelihood
      (``loss``), one optimiser (player ``"model"``).

    Across processes (``torchrun``; the trainer does it by itself), stochastic EM is
    sharded: within ``with model.sharded():`` each rank's ``fit_step`` takes its own rows,
    and at every layer the M-step's sums (sum r, sum r y E[z~]^T, sum r E[z~ z~^T],
    sum r y^2 and the log-likelihood) are summed over the ranks before the closed-form
    update, which every rank then solves on the same numbers. Layer 1's update is the
    single-process one on the union of the rows (one layer: the whole fit equals the
    single-process fit up to rounding); the S-step draws each rank's z for its own rows from
    its own seed, so the layers above see draws from the same distribution as a single
    process's, not the same draws.

    Both start from the same initialisation: layer by layer, k-means++ and Lloyd on the
    layer's input, then per cluster the factor analyser given by its principal components
    (probabilistic PCA, Tipping & Bishop 1999); the next layer's input is the posterior mean
    of z. The paper asks d > r_1 > r_2 > ... > r_h (dimension reduction); with
    ``strict_dims=False`` equal neighbours are allowed (e.g. r = (1, 1) on 2-D data).

    Arguments:
        data_shape: shape of one example (flattened to d numbers).
        n_components: k_l per layer, bottom (next to the data) first, e.g. ``[4, 2]``.
        latent_dims: r_l per layer; ``None`` halves the dimension at each layer, keeping
            r_l > r_(l+1) >= 1 (3-D data and two layers: r = (2, 1)).
        fit: ``"sem"`` or ``"gradient"`` (see above).
        strict_dims: demand r_l < r_{l-1} at every layer, as the paper does.
        reg_covar: floor added to every Psi (keeps covariances invertible).
        seed: seed of the initialisation and of the S-step draws.

    References:
        Viroli & McLachlan (2019). Deep Gaussian mixture models. Statistics and Computing
        29(1); arXiv:1711.06929.
        Ghahramani & Hinton (1996). The EM algorithm for mixtures of factor analyzers.
        Tipping & Bishop (1999). Probabilistic principal component analysis. JRSS B 61(3).

    Example:
        >>> import torch, genzoo
        >>> x = torch.randn(300, 4)
        >>> model = genzoo.create("deep-gmm", data=x, n_components=[3, 2], latent_dims=[2, 1])
        >>> stats = model.fit_step(x)
        >>> model.log_prob(x).shape, model.sample(5).shape
        (torch.Size([300]), torch.Size([5, 4]))
    """

    density = "exact"

    @model_fact(())
    def players(self) -> tuple[str, ...]:
        """None for stochastic EM (``fit="sem"``: the model fits itself), one optimiser for
        ``fit="gradient"``."""
        return () if self.fit_method == "sem" else ("model",)

    def __init__(
        self,
        data_shape: Sequence[int],
        n_components: Sequence[int] = (4, 2),
        latent_dims: Sequence[int] | None = None,
        fit: str = "sem",
        strict_dims: bool = True,
        reg_covar: float = 1e-6,
        seed: int = 0,
    ) -> None:
        super().__init__(data_shape)
        if fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
        ks = [int(k) for k in n_components]
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"n_components must be a non-empty list of k_l >= 1, got {ks}")
        d = self.data_dim
        if latent_dims is None:  # halve at each layer, leaving room for the layers below
            dims, r = [], d
            for below in range(len(ks) - 1, -1, -1):
                r = max(1 + below, r // 2) if strict_dims else max(1, r // 2)
                dims.append(r)
        else:
            dims = [int(r) for r in latent_dims]
        if len(dims) != len(ks):
            raise ValueError(f"latent_dims {dims} needs one entry per layer of n_components {ks}")
        bigger = [d, *dims]
        ok = all(
            (r < above if (strict_dims or i == 0) else r <= above) and r >= 1
            for i, (above, r) in enumerate(zip(bigger, dims, strict=False))
        )
        if not ok:
            rule = "d > r_1 > r_2 > ... >= 1" if strict_dims else "d > r_1 >= r_2 >= ... >= 1"
            raise ValueError(
                f"latent_dims {dims} for d={d} break the rule {rule} (Viroli & McLachlan "
                "2019); use fewer layers, smaller latent_dims, or strict_dims=False"
            )
        if not (reg_covar >= 0 and math.isfinite(reg_covar)):
            raise ValueError(f"reg_covar must be a finite number >= 0, got {reg_covar!r}")
        self.n_components = ks
        self.latent_dims = dims
        self.fit_method = fit
        self.reg_covar = float(reg_covar)
        self.seed = int(seed)
        self.logits = nn.ParameterList([nn.Parameter(torch.zeros(k)) for k in ks])
        self.eta = nn.ParameterList(
            [nn.Parameter(torch.zeros(k, p)) for k, p in zip(ks, bigger, strict=False)]
        )
        self.lam = nn.ParameterList(
            [
                nn.Parameter(0.1 * torch.randn(k, p, r))
                for k, p, r in zip(ks, bigger, dims, strict=False)
            ]
        )
        self.log_psi = nn.ParameterList(
            [nn.Parameter(torch.zeros(k, p)) for k, p in zip(ks, bigger, strict=False)]
        )
        self.register_buffer("n_iter_", torch.tensor(0))
        self.register_buffer("log_likelihood_", torch.tensor(-math.inf))
        self._group: Any = None  # the process group of a sharded fit (see ``sharded``)

    # -- parameters ------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """Number of layers h."""
        return len(self.n_components)

    @property
    def n_paths(self) -> int:
        """Number of Gaussian components of the marginal mixture, prod_l k_l."""
        return math.prod(self.n_components)

    @property
    def n_parameters(self) -> int:
        """Free parameters: per layer (k - 1) weights, k (p + p r + p) for eta, Lambda, Psi."""
        above = [self.data_dim, *self.latent_dims[:-1]]
        sizes = zip(self.n_components, above, self.latent_dims, strict=True)
        return sum(k - 1 + k * (2 * p + p * r) for k, p, r in sizes)

    def layer(self, i: int, dtype: torch.dtype | None = None) -> tuple[Tensor, ...]:
        """Layer i (0 = next to the data): log pi (k,), eta (k,p), Lambda (k,p,r), Psi (k,p)."""
        dtype = dtype or self.dtype
        log_pi = torch.log_softmax(self.logits[i].to(dtype), 0)
        psi = self.log_psi[i].to(dtype).exp() + self.reg_covar
        return log_pi, self.eta[i].to(dtype), self.lam[i].to(dtype), psi

    def prior(self, i: int, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The mixture that layers i..h-1 put on z^(i) (i = 0: on x), path by path.

        Returns log weights (P,), means (P, r_i) and covariances (P, r_i, r_i), composed from
        the top z^(h) ~ N(0, I) down (eq. 4 of the paper); P = prod of k over those layers.
        The path index has the lowest layer's component as its slowest-varying digit.
        """
        dtype = dtype or self.dtype
        r = self.latent_dims[-1]
        log_w = torch.zeros(1, device=self.device, dtype=dtype)
        mean = torch.zeros(1, r, device=self.device, dtype=dtype)
        cov = torch.eye(r, device=self.device, dtype=dtype).unsqueeze(0)
        for j in reversed(range(i, self.n_layers)):
            log_pi, eta, lam, psi = self.layer(j, dtype)
            # (k, P, p): one new component per (k_j component, path above)
            mean = (eta.unsqueeze(1) + torch.einsum("kpr,Pr->kPp", lam, mean)).flatten(0, 1)
            cov = torch.einsum("kpr,Prs,kqs->kPpq", lam, cov, lam) + torch.diag_embed(psi)[
                :, None
            ].expand(-1, cov.shape[0], -1, -1)
            cov = cov.flatten(0, 1)
            log_w = (log_pi.unsqueeze(1) + log_w.unsqueeze(0)).flatten()
        return log_w, mean, cov

    # -- density -------------------------------------------------------------------------------
    def _flat(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], self.data_dim)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log density in nats, a log-sum-exp over every path: (n, *data_shape) -> (n,)."""
        x = self._flat(self.check_input(x))
        log_w, mean, cov = self.prior(0)
        chol = torch.linalg.cholesky(cov.double()).to(cov.dtype)  # float64: small P d^3
        rows = max(1, CHUNK_ELEMENTS // (mean.shape[0] * self.data_dim))
        return torch.cat([_mixture_log_prob(part, log_w, mean, chol) for part in x.split(rows)])

    @torch.no_grad()
    def components(self) -> tuple[Tensor, Tensor, Tensor]:
        """The Gaussians of the paths on x: weights (P,), means (P, d), covariances (P, d, d)
        (``Mixture``; ``prior(0)`` with the weights exponentiated)."""
        log_w, mean, cov = self.prior(0)
        return log_w.exp(), mean, cov

    def predict_proba(self, x: Tensor) -> Tensor:
        """Posterior over paths p(s | x), in ``prior(0)``'s order: (n, *data_shape) -> (n, P)."""
        x = self._flat(self.check_input(x))
        log_w, mean, cov = self.prior(0)
        chol = torch.linalg.cholesky(cov.double()).to(cov.dtype)
        return torch.softmax(log_w + _gauss_log_prob(x, mean, chol), 1)

    def loss(self, batch: Tensor, player: str = "model") -> Tensor:
        """Mean exact negative log-likelihood (minimised by ``fit="gradient"``)."""
        return -self.log_prob(batch).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Ancestral sampling: z^(h) ~ N(0, I), then down each layer -> (n, *data_shape)."""
        where = generator.device if generator is not None else self.device
        if n == 0:  # torch.multinomial draws at least one
            return torch.zeros(0, *self.data_shape, device=self.device, dtype=self.dtype)
        z = torch.randn(n, self.latent_dims[-1], generator=generator, device=where)
        for i in reversed(range(self.n_layers)):
            log_pi, eta, lam, psi = (t.to(where, torch.float64) for t in self.layer(i))
            j = torch.multinomial(log_pi.exp(), n, replacement=True, generator=generator)
            noise = torch.randn(n, eta.shape[1], generator=generator, device=where)
            z = eta[j] + torch.einsum("npr,nr->np", lam[j], z.double()) + psi[j].sqrt() * noise
        return z.to(self.device, self.dtype).reshape(n, *self.data_shape)

    # -- initialisation ------------------------------------------------------------------------
    @torch.no_grad()
    def initialize(self, data: Tensor) -> None:
        """Layer-wise k-means++ / Lloyd, then a PPCA factor analyser per cluster (see class)."""
        check_shape(data, self.data_shape, "data")
        check_finite(data, "data")
        y = self._flat(data).to(self.device, EM_DTYPE)
        generator = torch.Generator().manual_seed(self.seed)
        for i, (k, r) in enumerate(zip(self.n_components, self.latent_dims, strict=True)):
            n, p = y.shape
            if n < k:
                raise DataError(f"layer {i + 1} has k={k} components but only {n} examples")
            centers = gm.kmeans_plusplus(y, k, generator)
            centers, labels = gm.lloyd(y, centers, 10, 4096)
            eta, lam, psi = [], [], []
            counts = torch.bincount(labels, minlength=k)
            z = torch.empty(n, r, device=y.device, dtype=EM_DTYPE)
            for j in range(k):
                part = y[labels == j] if counts[j] > 1 else y
                mu = part.mean(0)
                cov = torch.cov(part.T).reshape(p, p) + 1e-6 * torch.eye(p, device=y.device)
                evals, evecs = torch.linalg.eigh(cov)  # ascending
                evals, evecs = evals.flip(0), evecs.flip(1)
                sigma2 = evals[r:].mean().clamp_min(1e-6) if r < p else evals[-1] * 0.1
                lam_j = evecs[:, :r] * (evals[:r] - sigma2).clamp_min(1e-6).sqrt()
                psi_j = (cov.diagonal() - lam_j.square().sum(1)).clamp_min(sigma2 * 0.1)
                eta.append(mu)
                lam.append(lam_j)
                psi.append(psi_j)
                # posterior mean of z under N(0, I): (I + L^T Psi^-1 L)^-1 L^T Psi^-1 (y - mu)
                sel = labels == j
                a = lam_j / psi_j.unsqueeze(1)  # (p, r)
                m = torch.eye(r, device=y.device, dtype=EM_DTYPE) + lam_j.T @ a
                z[sel] = torch.linalg.solve(m, a.T @ (y[sel] - mu).T).T
            weights = (counts.to(EM_DTYPE) + 1) / (n + k)
            self._set_layer(i, weights, torch.stack(eta), torch.stack(lam), torch.stack(psi))
            y = z
        self.n_iter_.zero_()
        self.log_likelihood_.fill_(-math.inf)

    def _set_layer(self, i: int, weights: Tensor, eta: Tensor, lam: Tensor, psi: Tensor) -> None:
        """Write layer i's parameters (any dtype) into the model's parameters."""
        self.logits[i].copy_(weights.log())
        self.eta[i].copy_(eta)
        self.lam[i].copy_(lam)
        self.log_psi[i].copy_((psi - self.reg_covar).clamp_min(1e-12).log())

    # -- stochastic EM ---------------------------------------------------------------------------
    @property
    def shardable(self) -> bool:
        """Whether ``sharded`` stochastic EM across processes is available (``fit="sem"``)."""
        return self.fit_method == "sem"

    @contextlib.contextmanager
    def sharded(
        self, data: Tensor | None = None, c: Any = None, group: Any = None
    ) -> Iterator[DeepGaussianMixture]:
        """Stochastic EM across the processes of a ``torch.distributed`` group (see the
        class): rank 0's parameters are broadcast on entry, then each ``fit_step(rows)``
        takes this rank's rows and sums the M-step statistics over the ranks. ``data`` is
        not used (the model is initialised when created from data, or by ``initialize``,
        which every rank runs on the same data or rank 0's state replaces); ``group`` is the
        process group (the default one when None)."""
        if not self.shardable:
            raise ValueError("fit='gradient' trains by gradients: the trainer's DDP makes it "
                             "data-parallel, not sharded EM")  # fmt: skip
        em_shards.require_group()
        em_shards.broadcast_state(self, group)
        previous, self._group = self._group, em_shards.group_or_default(group)
        try:
            yield self
        finally:
            self._group = previous

    @torch.no_grad()
    def fit_step(self, data: Tensor) -> dict[str, float]:
        """One stochastic-EM sweep over the layers (Viroli & McLachlan 2019, section 3).

        Returns ``log_likelihood``: the exact mean log-likelihood of ``data`` (nats) under
        the parameters before this step.
        """
        check_shape(data, self.data_shape, "data")
        y = self._flat(data).to(self.device, EM_DTYPE)
        seed = self.seed + int(self.n_iter_)
        if self._group is not None:  # each rank draws the z of its own rows
            seed += em_shards.RANK_STRIDE * em_shards.rank(self._group)
        generator = torch.Generator(device=y.device).manual_seed(seed)
        ll = math.nan
        for i in range(self.n_layers):
            layer_ll, y, params = self._layer_step(i, y, generator)
            if i == 0:
                ll = layer_ll
            step = f"stochastic EM step {int(self.n_iter_) + 1}, layer {i + 1}"
            gm.check_log_likelihood(layer_ll, data, "data", step)
            self._set_layer(i, *params)
        self.n_iter_.add_(1)
        self.log_likelihood_.fill_(ll)
        return {"log_likelihood": ll}

    def _layer_step(self, i: int, y: Tensor, generator: torch.Generator):
        """E-, M- and S-step of layer i on its input y (n, p), the layers above fixed.

        Returns the exact mean log-likelihood of y under layers i.., the draws of z^(i+1)
        (n, r) and the new (weights, eta, Lambda, Psi) of layer i.
        """
        n, p = y.shape
        log_pi, eta, lam, psi = self.layer(i, EM_DTYPE)
        k, r = lam.shape[0], lam.shape[2]
        log_w, m, s = self.prior(i + 1, EM_DTYPE) if i + 1 < self.n_layers else self._top()
        q = m.shape[0]
        # 1. E-step: for each pair (j, upper path), y ~ N(eta_j + L_j m_q, L_j S_q L_j^T + Psi_j).
        lam_jq = lam.repeat_interleave(q, 0)  # (J, p, r), J = k q
        m_jq, s_jq = m.repeat(k, 1), s.repeat(k, 1, 1)  # (J, r), (J, r, r)
        ls = lam_jq @ s_jq  # (J, p, r)
        cov = ls @ lam_jq.transpose(1, 2) + torch.diag_embed(psi.repeat_interleave(q, 0))
        mean = eta.repeat_interleave(q, 0) + torch.einsum("Jpr,Jr->Jp", lam_jq, m_jq)
        chol = torch.linalg.cholesky(cov)  # (J, p, p)
        log_joint = (log_pi.repeat_interleave(q) + log_w.repeat(k)) + _gauss_log_prob(
            y, mean, chol
        )  # (n, J)
        ll = torch.logsumexp(log_joint, 1)
        resp = torch.softmax(log_joint, 1)  # (n, J)
        # posterior of z given (y, j, q): gain K = S L^T C^-1, V = S - K L S
        gain = torch.cholesky_solve(ls, chol).transpose(1, 2)  # (J, r, p)
        post_cov = s_jq - gain @ ls
        post_mean = m_jq + torch.einsum("Jrp,nJp->nJr", gain, y.unsqueeze(1) - mean)  # (n,J,r)
        # 2. M-step: closed-form MFA update with z~ = (z, 1).
        ones = torch.ones(n, k * q, 1, device=y.device, dtype=EM_DTYPE)
        zt = torch.cat([post_mean, ones], 2)  # (n, J, r+1)
        a = torch.einsum("nJ,np,nJs->Jps", resp, y, zt).reshape(k, q, p, r + 1).sum(1)
        b = torch.einsum("nJ,nJs,nJt->Jst", resp, zt, zt)
        nq = resp.sum(0)  # (J,)
        b[:, :r, :r] += nq[:, None, None] * post_cov
        b = b.reshape(k, q, r + 1, r + 1).sum(1)  # (k, r+1, r+1)
        nk = nq.reshape(k, q).sum(1)  # (k,)
        rk = resp.reshape(n, k, q).sum(2)  # (n, k)
        yy = rk.T @ y.square()  # (k, p): sum_n r_nj y_n^2
        mean_ll = ll.mean()
        if self._group is not None:  # the sums of every rank's rows (sharded EM)
            count = torch.tensor(float(n), dtype=EM_DTYPE, device=y.device)
            a, b, nk, yy, scalars = em_shards.all_reduce_sum(
                [a, b, nk, yy, torch.stack([ll.sum(), count])], self._group, agree=2
            )
            mean_ll, n_all = scalars[0] / scalars[1], scalars[1]
        else:
            n_all = n
        b = b + 1e-10 * torch.eye(r + 1, device=y.device, dtype=EM_DTYPE)
        ext = torch.linalg.solve(b, a.transpose(1, 2)).transpose(1, 2)  # (k, p, r+1)
        new_psi = ((yy - (ext * a).sum(2)) / nk.clamp_min(1e-12)[:, None]).clamp_min(0)
        new_psi = new_psi + self.reg_covar
        weights = (nk / n_all).clamp_min(1e-12)
        empty = nk < 1e-8  # a component with no data keeps its parameters
        new_lam = torch.where(empty[:, None, None], lam, ext[:, :, :r])
        new_eta = torch.where(empty[:, None], eta, ext[:, :, r])
        new_psi = torch.where(empty[:, None], psi, new_psi)
        # 3. S-step: one draw of (j, q) and z per example, the next layer's data.
        pick = torch.multinomial(resp, 1, generator=generator).squeeze(1)  # (n,)
        noise = torch.randn(n, r, 1, generator=generator, device=y.device, dtype=EM_DTYPE)
        v_chol = torch.linalg.cholesky(post_cov + 1e-12 * torch.eye(r, device=y.device))
        z = post_mean[torch.arange(n, device=y.device), pick] + (v_chol[pick] @ noise).squeeze(2)
        return float(mean_ll), z, (weights / weights.sum(), new_eta, new_lam, new_psi)

    def _top(self) -> tuple[Tensor, Tensor, Tensor]:
        """The N(0, I) prior of z^(h) as a one-path mixture (float64)."""
        r = self.latent_dims[-1]
        eye = torch.eye(r, device=self.device, dtype=EM_DTYPE)
        return torch.zeros(1, device=self.device, dtype=EM_DTYPE), eye[:1] * 0, eye[None]


def _gauss_log_prob(y: Tensor, mean: Tensor, chol: Tensor) -> Tensor:
    """log N(y_n | mean_J, L_J L_J^T): y (n,p), mean (J,p), chol (J,p,p) -> (n,J)."""
    p = y.shape[1]
    diff = (y.unsqueeze(0) - mean.unsqueeze(1)).transpose(1, 2)  # (J, p, n)
    sol = torch.linalg.solve_triangular(chol, diff, upper=False)  # (J, p, n)
    maha = sol.square().sum(1).T  # (n, J)
    half_log_det = chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (J,)
    return -0.5 * (p * LOG_2PI + maha) - half_log_det


def _mixture_log_prob(x: Tensor, log_w: Tensor, mean: Tensor, chol: Tensor) -> Tensor:
    """log sum_P w_P N(x | mean_P, chol_P chol_P^T): x (n,p) -> (n,)."""
    return torch.logsumexp(log_w + _gauss_log_prob(x, mean, chol), 1)


def paths(n_components: Sequence[int]) -> list[tuple[int, ...]]:
    """Every path (s_1, .., s_h), in the order of ``DeepGaussianMixture.prior``'s index."""
    return list(itertools.product(*(range(k) for k in n_components)))
