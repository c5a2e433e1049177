"""Variational autoencoders: ``vae`` (Kingma & Welling 2014) and ``beta-vae`` (Higgins et al. 2017).

The encoder gives ``q(z | x) = N(mu(x), diag(s(x)^2))`` (optionally followed by an amortised
planar flow, Rezende & Mohamed 2015), the decoder ``p(x | z)`` (Bernoulli, Gaussian or
categorical), the prior is ``N(0, I)``. Training maximises the ELBO (eq. 3 of Kingma & Welling)

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))

with the reparameterisation ``z = mu + s * eps`` and the analytic KL of appendix B. The ELBO is
only a lower bound, so ``log_prob`` is the importance-weighted estimate of Burda et al. (2016),
``IWAE-k = log 1/k sum_i p(x, z_i) / q(z_i | x)``, ``z_i ~ q``, which tightens with ``k``:
``density = "estimate"``.

Both are conditional VAEs (CVAE: Sohn, Lee & Yan 2015, "Learning structured output
representation using deep conditional generative models", NeurIPS) when built with a condition
``c`` (``n_classes`` or ``condition_dim``; the paper's input ``x``, our ``x`` being its output
``y``): the encoder is ``q(z | x, c)``, the decoder ``p(x | z, c)``, both reading ``c`` as a
context (a one-hot class or a standardised vector, concatenated to the MLPs' inputs; constant
extra channels for the convolutional encoder, concatenated to ``z`` for the convolutional
decoder). The prior stays ``N(0, I)``, independent of ``c``: the relaxation ``p(z | c) =
p(z)`` the paper allows in section 3 (as in Kingma et al. 2014's M2), its prior network left
out. The conditional ELBO and IWAE then bound ``log p(x | c)``:

    ELBO(x | c) = E_q(z|x,c)[log p(x | z, c)] - KL(q(z | x, c) || N(0, I)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from genzoo.errors import DataError
from genzoo.models.base import model_fact
from genzoo.models.conditioning import Context
from genzoo.models.flows.base import standard_normal_log_prob
from genzoo.models.nn import ACTIVATIONS
from genzoo.models.vae.elbo import EVAL_SEED as EVAL_SEED
from genzoo.models.vae.elbo import ELBOModel
from genzoo.models.vae.likelihoods import (
    LIKELIHOODS,
    VARIANCES,
    diagonal_normal_log_prob,
    gaussian_kl,
    make_likelihood,
    reparameterise_with_kl,
    resolve_likelihood,
)
from genzoo.models.vae.networks import Decoder, Encoder, resolve_network
from genzoo.models.vae.posterior import planar_flow, planar_parameter_count
from genzoo.registry import register_model

POSTERIORS = ("gaussian", "planar")
#: Rows (samples x examples) decoded at once by ``iwae``, at most, and data values decoded
#: at once (rows x values per example): together they bound its memory on large images too.
IWAE_ROWS = 65_536
IWAE_VALUES = 2**22


@register_model("vae", family="vae")
class VAE(ELBOModel):
    """Variational autoencoder (Kingma & Welling 2014): Gaussian encoder, ELBO, IWAE log_prob.

    Arguments:
        data_shape: shape of one example (read from the data).
        latent_dim: dimensions of ``z``.
        likelihood: ``"bernoulli"`` (0/1 data), ``"gaussian"``, ``"categorical"`` (integer
            levels) or ``"auto"``, which ``genzoo.create`` resolves from the data.
        decoder_variance: Gaussian std ``"learned"`` by the decoder, ``"shared"`` (one
            parameter per data dimension) or ``"fixed"`` to ``decoder_std``.
        decoder_std: the fixed Gaussian std.
        levels: number of levels of the categorical likelihood (read from integer data).
        network: ``"mlp"``, ``"conv"`` (images with sides divisible by 4) or ``"auto"``
            (conv for images with sides >= 16, MLP otherwise, 8x8 digits included).
        hidden, depth: MLP width and number of hidden layers (``depth=0``: linear maps).
        channels: width of the convolutional networks.
        activation: activation name (``genzoo.models.nn.ACTIVATIONS``).
        posterior: ``"gaussian"`` or ``"planar"`` (amortised planar flow on top of it).
        flow_layers: planar maps of the flow posterior.
        kl_warmup_steps: steps over which the KL weight rises linearly from 0 (0 = none).
            Without it a Gaussian decoder with learned variance on 2-D data collapses (it
            fits the data by its noise, KL 0: 8gaussians IWAE NLL 4.26 nats, 3.45 with 500).
        iwae_samples: importance samples ``k`` of ``log_prob`` (IWAE-k).
        active_threshold: a latent unit is active when ``Var_x(E_q[z_j]) > threshold``
            (Burda et al. 2016, section 5.2).
        free_bits: nats of KL per latent dimension that cost nothing in training (Kingma et
            al. 2016), against posterior collapse; 0 trains the plain ELBO.
        n_classes: ``K`` > 0 makes it a conditional VAE (Sohn et al. 2015) of ``p(x | c)``,
            ``c`` a class in ``0..K-1``: encoder and decoder read the one-hot class.
        condition_dim: ``C`` > 0 conditions it on a vector of ``C`` numbers instead
            (standardised with the training conditions' statistics).

    Example:
        >>> import torch, genzoo
        >>> x = (torch.rand(64, 1, 8, 8) > 0.5).float()
        >>> vae = genzoo.create("vae", data=x, latent_dim=4, hidden=32, iwae_samples=10)
        >>> vae.likelihood_name, vae.density, vae.log_prob(x[:3]).shape
        ('bernoulli', 'estimate', torch.Size([3]))
        >>> c = torch.arange(64) % 10  # a conditional VAE: q(z | x, c), p(x | z, c)
        >>> cvae = genzoo.create("vae", data=x, condition=c, latent_dim=4, iwae_samples=10)
        >>> cvae.n_classes, cvae.sample(5, c=3).shape, cvae.log_prob(x[:3], c=c[:3]).shape
        (10, torch.Size([5, 1, 8, 8]), torch.Size([3]))
    """

    condition_kinds = ("discrete", "continuous")

    def __init__(
        self,
        data_shape: Sequence[int],
        latent_dim: int = 8,
        likelihood: str = "auto",
        decoder_variance: str = "learned",
        decoder_std: float = 0.1,
        levels: int = 0,
        network: str = "auto",
        hidden: int = 128,
        depth: int = 2,
        channels: int = 32,
        activation: str = "relu",
        posterior: str = "gaussian",
        flow_layers: int = 4,
        kl_warmup_steps: int = 500,
        iwae_samples: int = 1000,
        active_threshold: float = 0.01,
        free_bits: float = 0.0,
        n_classes: int = 0,
        condition_dim: int = 0,
    ) -> None:
        super().__init__(data_shape)
        self.setup_condition(n_classes, condition_dim)
        if likelihood == "auto":
            raise ValueError(
                "likelihood='auto' is resolved from the data: pass data=... to genzoo.create, "
                f"or choose one of {LIKELIHOODS[1:]}"
            )
        _check_choice("likelihood", likelihood, LIKELIHOODS[1:])
        _check_choice("decoder_variance", decoder_variance, VARIANCES)
        _check_choice("posterior", posterior, POSTERIORS)
        _check_choice("activation", activation, tuple(sorted(ACTIVATIONS)))
        if likelihood == "categorical" and levels < 2:
            raise ValueError(
                "likelihood='categorical' needs levels >= 2 (data holding the integers "
                f"0..levels-1, read from the data by genzoo.create); got levels={levels}"
            )
        positive = {"latent_dim": latent_dim, "hidden": hidden, "channels": channels}
        positive |= {"iwae_samples": iwae_samples}
        for key, value in positive.items():
            if value < 1:
                raise ValueError(f"{key} must be >= 1; got {value}")
        if depth < 0 or kl_warmup_steps < 0 or flow_layers < 0:
            raise ValueError(f"need depth, kl_warmup_steps, flow_layers >= 0; got {depth=}, "
                             f"{kl_warmup_steps=}, {flow_layers=}")  # fmt: skip
        if decoder_std <= 0 or active_threshold < 0 or free_bits < 0:
            raise ValueError(f"need decoder_std > 0, active_threshold >= 0, free_bits >= 0; got "
                             f"{decoder_std=}, {active_threshold=}, {free_bits=}")  # fmt: skip
        if free_bits > 0 and posterior != "gaussian":
            raise ValueError("free_bits needs the KL per latent dimension: posterior='gaussian'")
        self.latent_dim, self.likelihood_name, self.posterior = latent_dim, likelihood, posterior
        self.flow_layers = flow_layers if posterior == "planar" else 0
        self.kl_warmup_steps = kl_warmup_steps
        self.iwae_samples, self.active_threshold = iwae_samples, active_threshold
        self.free_bits = float(free_bits)
        kind = resolve_network(network, self.data_shape)
        n_flow = planar_parameter_count(latent_dim, self.flow_layers)
        self.likelihood = make_likelihood(
            likelihood, self.data_dim, decoder_variance, decoder_std, levels
        )
        #: The condition as the networks read it (no state, ``features = 0``, unconditional).
        self.context = Context(self.n_classes, self.condition_dim)
        nets = {"network": kind, "hidden": hidden, "depth": depth, "channels": channels,
                "activation": activation, "context_features": self.context.features}  # fmt: skip
        self.encoder = Encoder(self.data_shape, 2 * latent_dim + n_flow, **nets)
        self.decoder = Decoder(latent_dim, self.data_shape, self.likelihood.n_params, **nets)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def config_from_data(cls, data: Tensor) -> dict[str, Any]:
        """The data shape, ``likelihood`` (Bernoulli for 0/1 data, else Gaussian) and, for
        integer data, ``levels`` (the largest value + 1)."""
        config = super().config_from_data(data)
        config["likelihood"] = resolve_likelihood(data)
        integer = bool((data == data.round()).all()) and float(data.min()) >= 0
        config["levels"] = int(data.max()) + 1 if integer and float(data.max()) < 1024 else 0
        return config

    @classmethod
    def data_kind_for(cls, data: Tensor, hparams: Mapping[str, Any]) -> str:
        """``"discrete"`` when the model would score ``data`` (raw levels) as they are
        (Bernoulli, categorical), ``"continuous"`` when it needs dequantised data."""
        likelihood = hparams.get("likelihood", "auto")
        if likelihood == "auto":
            likelihood = resolve_likelihood(data)
        return "continuous" if likelihood == "gaussian" else "discrete"

    @model_fact("continuous")
    def data_kind(self) -> str:
        """``data_kind_for`` this model's likelihood: Bernoulli and categorical decoders score
        binary or integer-level data as they are (no dequantisation)."""
        return self.data_kind_for(None, {"likelihood": self.likelihood_name})

    def initialize(self, data: Tensor, c: Any = None) -> None:
        """Check that the data suit the likelihood (0/1 for Bernoulli, levels for categorical);
        a conditional VAE's conditions set the class prior (the training frequencies, for
        Bayes' rule) or the standardisation of a vector condition."""
        c = self.check_condition(c, len(data))
        if c is not None:
            self.set_class_prior(c)
            self.context.arm()
            self.context(c)  # fits a vector condition's mean and std; nothing for a class
        if self.likelihood_name == "bernoulli" and (data.min() < 0 or data.max() > 1):
            raise DataError(
                "likelihood='bernoulli' needs data in [0, 1] (binary images); got values in "
                f"[{float(data.min())}, {float(data.max())}]: use likelihood='gaussian'"
            )
        if self.likelihood_name == "categorical":
            levels = self.likelihood.levels
            if not bool((data == data.round()).all()) or data.min() < 0 or data.max() >= levels:
                raise DataError(
                    f"likelihood='categorical' needs integer levels 0..{levels - 1} (raw, not "
                    "dequantised, data); use likelihood='gaussian' for continuous data"
                )

    # -- the posterior and the joint ----------------------------------------------------------
    def _context(self, c: Any, n: int) -> Tensor | None:
        """The checked condition ``c`` of ``n`` examples as the networks' context ``(n, K)``
        (``None`` for an unconditional VAE, which refuses a ``c`` in one line)."""
        return self.context(self.check_condition(c, n))

    def posterior_parameters(self, x: Tensor, c: Any = None) -> tuple[Tensor, Tensor, Tensor]:
        """``mu``, ``logvar`` ``(batch, latent_dim)`` of ``q_0(z | x)`` (``q_0(z | x, c)``) and
        the flow's parameters ``(batch, n)`` (``n = 0`` for the Gaussian posterior)."""
        return self._posterior(x, self._context(c, x.shape[0]))

    def _posterior(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encoder(x, context)
        d = self.latent_dim
        return h[:, :d], h[:, d : 2 * d].clamp(-30.0, 20.0), h[:, 2 * d :]

    def log_weights(
        self, x: Tensor, samples: int, generator: torch.Generator | None = None, c: Any = None
    ) -> dict[str, Tensor]:
        """``samples`` draws ``z ~ q(z | x)`` (``q(z | x, c)``) per example and their log
        densities.

        Returns ``log_px`` = ``log p(x | z)`` (``log p(x | z, c)``), ``log_pz`` = ``log p(z)``,
        ``log_qz`` = ``log q(z | x)``, each ``(samples, batch)``, and ``mu``, ``logvar``
        ``(batch, d)``.
        """
        context = self._context(c, x.shape[0])
        mu, logvar, flow = self._posterior(x, context)
        eps = torch.randn(
            (samples, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype
        )
        z = mu + (0.5 * logvar).exp() * eps  # the reparameterisation trick, eq. (10)
        log_qz = diagonal_normal_log_prob(z, mu, logvar)
        if self.flow_layers:
            z, log_det = planar_flow(z, flow, self.flow_layers)
            log_qz = log_qz - log_det  # eq. (13) of Rezende & Mohamed
        if context is not None:  # z is (samples, batch, d): the context of each row of z
            context = context.expand(samples, -1, -1).reshape(-1, context.shape[1])
        params = self.decoder(z.reshape(-1, self.latent_dim), context)
        flat = x.flatten(1).expand(samples, -1, -1).reshape(samples * x.shape[0], -1)
        log_px = self.likelihood.log_prob(flat, params).reshape(samples, -1)
        return {"log_px": log_px, "log_pz": standard_normal_log_prob(z), "log_qz": log_qz,
                "mu": mu, "logvar": logvar}  # fmt: skip

    # -- training -----------------------------------------------------------------------------
    def loss(self, batch: Tensor, player: str = "model", c: Any = None) -> dict[str, Tensor]:
        """``-ELBO`` as ``reconstruction + kl_weight * kl`` (given the batch's conditions ``c``
        for a conditional VAE); the ELBO itself, the KL per latent dimension and the active
        units are logged as ``diag/...``."""
        x = batch.to(next(self.decoder.parameters()))  # its device and dtype (cheaper reads)
        if self.flow_layers:
            w = self.log_weights(x, samples=1, c=c)
            mu, logvar, log_px = w["mu"], w["logvar"], w["log_px"]
            # a flow posterior has no closed-form KL: the Monte-Carlo E_q[log q(z|x) - log p(z)]
            kl = (w["log_qz"] - w["log_pz"]).mean()
        else:  # the short path of log_weights for one sample and the analytic KL
            plain = c is None and self.condition_kind is None  # no context to build or check
            context = None if plain else self._context(c, x.shape[0])
            mu, logvar, _ = self._posterior(x, context)
            # z = mu + s * eps, eq. (10), and the analytic KL of appendix B in one node
            z, kl_dims = reparameterise_with_kl(mu, logvar, torch.randn_like(mu))
            log_px = self.likelihood.log_prob(x.flatten(1), self.decoder(z, context))
            reconstruction = -log_px.mean()  # -E_q[log p(x|z)], one sample
            return self.elbo_terms(reconstruction, kl_dims, mu)  # KL: the sum of kl_dims
        reconstruction = -log_px.mean()
        return self.elbo_terms(reconstruction, gaussian_kl(mu, logvar), mu, kl)  # appendix B

    # -- densities ----------------------------------------------------------------------------
    @torch.no_grad()
    def elbo(
        self,
        x: Tensor,
        samples: int = 1,
        generator: torch.Generator | None = None,
        c: Any = None,
    ) -> Tensor:
        """Per-example ELBO ``(batch,)`` in nats, ``E_q[log p(x|z)]`` averaged over
        ``samples`` draws minus the analytic KL (Monte-Carlo KL for a flow posterior); a
        conditional VAE's is the bound on ``log p(x | c)``, given ``c``."""
        x = self.check_input(x)
        w = self.log_weights(x, samples, self._generator(generator), c=c)
        if self.flow_layers:
            return (w["log_px"] + w["log_pz"] - w["log_qz"]).mean(0)
        return w["log_px"].mean(0) - gaussian_kl(w["mu"], w["logvar"]).sum(1)

    @torch.no_grad()
    def iwae(
        self, x: Tensor, k: int, generator: torch.Generator | None = None, c: Any = None
    ) -> Tensor:
        """IWAE-k, ``log 1/k sum_i p(x, z_i) / q(z_i | x)`` ``(batch,)`` (Burda et al. 2016,
        eq. 8): a lower bound on ``log p(x)`` that rises to it as ``k`` grows; given ``c``,
        ``log 1/k sum_i p(x | z_i, c) p(z_i) / q(z_i | x, c)``, one on ``log p(x | c)``."""
        x = self.check_input(x)
        c = self.check_condition(c, x.shape[0])
        generator = self._generator(generator)
        rows = min(IWAE_ROWS, max(1, IWAE_VALUES // math.prod(self.data_shape)))
        if x.shape[0] > rows:  # large images: the examples a part at a time as well
            return torch.cat([
                self.iwae(x[i : i + rows], k, generator, None if c is None else c[i : i + rows])
                for i in range(0, x.shape[0], rows)
            ])  # fmt: skip
        chunk = max(1, rows // max(1, x.shape[0]))
        parts = []
        for start in range(0, k, chunk):
            w = self.log_weights(x, min(chunk, k - start), generator, c=c)
            parts.append(w["log_px"] + w["log_pz"] - w["log_qz"])  # (samples, batch)
        return torch.logsumexp(torch.cat(parts), dim=0) - math.log(k)

    # -- sampling and the latent space --------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None, c: Any = None) -> Tensor:
        """``x ~ p(x | z)``, ``z ~ N(0, I)``: ``(n, *data_shape)``; given ``c`` (a class or
        vector for all ``n``, or one per sample), ``x ~ p(x | z, c)``."""
        with torch.no_grad():
            context = self._context(c, n)
            z = torch.randn(
                n, self.latent_dim, generator=generator, device=self.device, dtype=self.dtype
            )
            x = self.likelihood.sample(self.decoder(z, context), generator)
        return x.reshape(n, *self.data_shape)

    @torch.no_grad()
    def encode(self, x: Tensor, c: Any = None) -> Tensor:
        """The posterior mean ``mu(x)`` (``mu(x, c)``) ``(batch, latent_dim)`` (for a flow
        posterior, the flow's image of ``mu``)."""
        mu, _, flow = self.posterior_parameters(self.check_input(x), c)
        if self.flow_layers:
            mu = planar_flow(mu.unsqueeze(0), flow, self.flow_layers)[0][0]
        return mu

    @torch.no_grad()
    def decode(self, z: Tensor, c: Any = None) -> Tensor:
        """The mean of ``p(x | z)`` (``p(x | z, c)``) ``(batch, *data_shape)`` for ``z``
        ``(batch, latent_dim)``."""
        z = z.to(device=self.device, dtype=self.dtype)
        params = self.decoder(z, self._context(c, z.shape[0]))
        return self.likelihood.mean(params).reshape(z.shape[0], *self.data_shape)


def _check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {tuple(choices)}; got {value!r}")


@register_model("beta-vae", family="vae")
class BetaVAE(VAE):
    """beta-VAE (Higgins et al. 2017): the ELBO with the KL term weighted by ``beta``.

    Maximises ``E_q[log p(x|z)] - beta KL(q(z|x) || p(z))`` (eq. 4 of the paper); ``beta > 1``
    presses the posterior towards the factorised prior, for disentangled latents at the cost
    of reconstructions. ``log_prob`` is still the IWAE estimate of ``log p(x)`` and ``elbo`` the
    true (``beta = 1``) ELBO.

    Arguments:
        beta: weight of the KL term (after the warm-up); ``>= 0``.
        The other arguments are those of ``vae``.

    Example:
        >>> import torch, genzoo
        >>> model = genzoo.create("beta-vae", data=torch.randn(64, 2), beta=4.0, hidden=16)
        >>> model.kl_weight()  # warm-up: 0 at step 0, beta after kl_warmup_steps
        0.0
        >>> model.steps_done += 500
        >>> model.kl_weight()
        4.0
    """

    def __init__(self, data_shape: Sequence[int], beta: float = 4.0, **kwargs: Any) -> None:
        if beta < 0:
            raise ValueError(f"need beta >= 0; got {beta=}")
        super().__init__(data_shape, **kwargs)
        self.beta = float(beta)
