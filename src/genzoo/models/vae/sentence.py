"""Sentence VAE (Bowman, Vilnis, Vinyals, Dai, Jozefowicz & Bengio 2016, "Generating sentences
from a continuous space").

An LSTM reads the sentence into ``q(z | x) = N(mu, diag(s^2))``; ``z`` sets the initial state of
an LSTM language model ``p(x | z) = prod_t p(x_t | x_<t, z)`` (section 3, figure 1). Training
maximises the ELBO with the two remedies of section 3.1 against posterior collapse: KL cost
annealing (the KL weight rises from 0 to 1 over ``kl_warmup_steps``) and word dropout (each
decoder input token is replaced by ``<unk>`` with probability ``word_dropout``). At small budgets
these are not enough (the KL still falls to 0), so the KL term also has free bits (Kingma,
Salimans, Jozefowicz, Chen, Sutskever & Welling 2016, appendix C.8): each latent dimension's
batch-averaged KL below ``free_bits`` nats costs nothing, ``sum_j max(free_bits, E[KL_j])``. The
logged ``diag/elbo`` and ``elbo`` are the true ELBO either way. Data are token
ids ``(n, seq_len)`` from ``genzoo.data.text``: positions after the first ``<eos>`` hold ``<pad>``,
are not scored and are emitted deterministically, so ``log p`` is the sentence's probability.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genzoo.data.text import BOS, EOS, PAD, UNK
from genzoo.errors import DataError
from genzoo.models.flows.base import standard_normal_log_prob
from genzoo.models.vae.elbo import EVAL_SEED as EVAL_SEED
from genzoo.models.vae.elbo import ELBOModel
from genzoo.models.vae.likelihoods import diagonal_normal_log_prob, gaussian_kl
from genzoo.registry import register_model
from genzoo.validation import check_finite, check_shape

#: Sequences (samples x sentences) decoded at once by ``iwae``; bounds its memory.
IWAE_ROWS = 2048


@register_model("sentence-vae", family="vae")
class SentenceVAE(ELBOModel):
    """Sentence VAE (Bowman et al. 2016): LSTM encoder and decoder, KL annealing, word dropout,
    free bits (Kingma et al. 2016).

    Arguments:
        data_shape: ``[seq_len]`` (read from the data).
        vocab_size: number of token ids (read from the data: its largest id + 1).
        latent_dim: dimensions of ``z``.
        embed_dim: token embedding width.
        hidden: LSTM state width.
        word_dropout: probability of replacing a decoder input by ``<unk>`` in training.
        kl_warmup_steps: steps over which the KL weight rises linearly from 0 to 1.
        iwae_samples: importance samples of ``log_prob`` (IWAE-k).
        active_threshold: activity threshold of a latent unit (Burda et al. 2016).
        free_bits: nats of KL per latent dimension that cost nothing in training (free bits,
            Kingma et al. 2016); annealing and word dropout alone let short runs collapse
            (KL 0, no active unit), 0.25 keeps every unit active at a small cost in ELBO.

    Example:
        >>> import torch, genzoo
        >>> x = torch.randint(4, 20, (32, 10))
        >>> model = genzoo.create("sentence-vae", data=x, hidden=16, iwae_samples=4)
        >>> model.sample(2).shape, model.log_prob(x[:3]).shape
        (torch.Size([2, 10]), torch.Size([3]))
    """

    data_kind = "discrete"
    data_kinds = ("text",)
    text_layout = "lines"  # one sentence per example

    def __init__(
        self,
        data_shape: Sequence[int],
        vocab_size: int,
        latent_dim: int = 16,
        embed_dim: int = 64,
        hidden: int = 128,
        word_dropout: float = 0.25,
        kl_warmup_steps: int = 1000,
        iwae_samples: int = 100,
        active_threshold: float = 0.01,
        free_bits: float = 0.25,
    ) -> None:
        super().__init__(data_shape)
        if len(self.data_shape) != 1:
            raise DataError(
                f"sentence-vae reads token ids shaped (n, seq_len); got examples shaped "
                f"{self.data_shape}: use a text dataset (genzoo.data.text)"
            )
        sizes = {"vocab_size": vocab_size - 4, "latent_dim": latent_dim, "embed_dim": embed_dim,
                 "hidden": hidden, "iwae_samples": iwae_samples}  # fmt: skip
        for key, value in sizes.items():
            if value < 1:
                raise ValueError(f"{key} must be >= 1 (vocab_size >= 5, specials included)")
        if not 0 <= word_dropout <= 1 or kl_warmup_steps < 0 or free_bits < 0:
            raise ValueError(f"need 0 <= word_dropout <= 1, kl_warmup_steps >= 0, free_bits >= 0;"
                             f" got {word_dropout=}, {kl_warmup_steps=}, {free_bits=}")  # fmt: skip
        self.vocab_size, self.latent_dim, self.word_dropout = vocab_size, latent_dim, word_dropout
        self.kl_warmup_steps, self.iwae_samples = kl_warmup_steps, iwae_samples
        self.active_threshold, self.free_bits = active_threshold, float(free_bits)
        self.enc_embed = nn.Embedding(vocab_size, embed_dim)
        self.enc_rnn = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.to_posterior = nn.Linear(hidden, 2 * latent_dim)
        self.dec_embed = nn.Embedding(vocab_size, embed_dim)
        self.to_state = nn.Linear(latent_dim, hidden)
        self.dec_rnn = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.to_logits = nn.Linear(hidden, vocab_size)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    @classmethod
    def config_from_data(cls, data: Tensor) -> dict[str, Any]:
        """``data_shape`` and ``vocab_size`` (largest id + 1, at least the 4 specials + 1)."""
        return {"data_shape": list(data.shape[1:]), "vocab_size": max(5, int(data.max()) + 1)}

    def check_tokens(self, x: Tensor) -> Tensor:
        """Validate ids ``(batch, seq_len)`` in ``0..vocab_size-1``; return them as int64."""
        check_finite(check_shape(x, self.data_shape), "input")  # empty input: a clear error
        if x.is_floating_point() and not bool((x == x.round()).all()):
            raise DataError("sentence-vae reads integer token ids; got non-integer values")
        x = x.to(device=self.device, dtype=torch.long)
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.vocab_size):
            raise DataError(
                f"token ids must lie in 0..{self.vocab_size - 1} (this model's vocabulary); got "
                f"ids in [{int(x.min())}, {int(x.max())}]"
            )
        return x

    # -- encoder, decoder ---------------------------------------------------------------------
    def posterior_parameters(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``mu``, ``logvar`` ``(batch, latent_dim)`` from the LSTM state at the last token."""
        out, _ = self.enc_rnn(self.enc_embed(x))  # (batch, seq_len, hidden)
        last = ((x != PAD).sum(1) - 1).clamp_min(0)  # the position of <eos> (or the end)
        h = out[torch.arange(x.shape[0], device=x.device), last]
        mu, logvar = self.to_posterior(h).chunk(2, dim=-1)
        return mu, logvar.clamp(-30.0, 20.0)

    def _state(self, z: Tensor) -> tuple[Tensor, Tensor]:
        h = self.to_state(z).unsqueeze(0)  # (1, batch, hidden): z sets the initial state
        return h, torch.zeros_like(h)

    def sequence_log_prob(self, x: Tensor, z: Tensor, word_dropout: float = 0.0) -> Tensor:
        """``log p(x | z)`` ``(batch,)``: the decoder reads ``<bos> x_1 .. x_{L-1}`` (inputs
        dropped to ``<unk>`` with probability ``word_dropout``) and scores every non-pad token."""
        inputs = torch.cat([torch.full_like(x[:, :1], BOS), x[:, :-1]], dim=1)
        if word_dropout > 0:
            drop = torch.rand(inputs.shape, device=x.device) < word_dropout
            drop[:, 0] = False
            inputs = inputs.masked_fill(drop & (inputs != PAD), UNK)
        out, _ = self.dec_rnn(self.dec_embed(inputs), self._state(z))
        log_p = F.log_softmax(self._logits(out), dim=-1).gather(2, x.unsqueeze(2)).squeeze(2)
        return torch.where(x != PAD, log_p, 0.0).sum(1)

    def _logits(self, h: Tensor) -> Tensor:
        """Next-token logits; ``<pad>`` and ``<bos>`` are never emitted (after ``<eos>`` the
        pads are certain), so the sentences up to ``<eos>`` (or ``seq_len`` tokens) sum to 1."""
        never = torch.zeros(self.vocab_size, device=h.device, dtype=h.dtype)
        never[[PAD, BOS]] = float("-inf")
        return self.to_logits(h) + never

    # -- training -----------------------------------------------------------------------------
    def loss(self, batch: Tensor, player: str = "model") -> dict[str, Tensor]:
        """``-ELBO`` with the annealed KL (KL cost annealing, section 3.1, and free bits); the
        ELBO, KL per dimension, active units logged."""
        x = batch.to(device=self.device, dtype=torch.long)
        mu, logvar = self.posterior_parameters(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)  # reparameterisation
        reconstruction = -self.sequence_log_prob(x, z, self.word_dropout).mean()
        return self.elbo_terms(reconstruction, gaussian_kl(mu, logvar), mu)

    # -- densities ----------------------------------------------------------------------------
    @torch.no_grad()
    def elbo(self, x: Tensor, samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """Per-sentence ELBO ``(batch,)`` in nats (no word dropout)."""
        x = self.check_tokens(x)
        generator = self._generator(generator)
        mu, logvar = self.posterior_parameters(x)
        rec = torch.zeros_like(mu[:, 0])
        for _ in range(samples):
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            rec += self.sequence_log_prob(x, mu + (0.5 * logvar).exp() * eps) / samples
        return rec - gaussian_kl(mu, logvar).sum(1)

    @torch.no_grad()
    def iwae(self, x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        """IWAE-k estimate of ``log p(x)`` ``(batch,)`` (Burda et al. 2016, eq. 8)."""
        x = self.check_tokens(x)
        generator = self._generator(generator)
        mu, logvar = self.posterior_parameters(x)
        chunk = max(1, IWAE_ROWS // x.shape[0])
        parts = []
        for start in range(0, k, chunk):
            s = min(chunk, k - start)
            eps = torch.randn((s, *mu.shape), generator=generator, device=mu.device,
                              dtype=mu.dtype)  # fmt: skip
            z = mu + (0.5 * logvar).exp() * eps  # (s, batch, d)
            log_px = self.sequence_log_prob(x.repeat(s, 1), z.reshape(-1, self.latent_dim))
            parts.append(log_px.view(s, -1) + standard_normal_log_prob(z)
                         - diagonal_normal_log_prob(z, mu, logvar))  # fmt: skip
        return torch.logsumexp(torch.cat(parts), 0) - math.log(k)

    def scored_positions(self, x: Tensor) -> Tensor:
        """How many positions of each sentence ``log p(x | z)`` scores, ``(batch,)`` int64: the
        words and the first ``<eos>``; the ``<pad>`` after it are certain and not scored, so
        bits per token divide the sentence's nats by these counts, not by ``seq_len``."""
        return (self.check_tokens(x) != PAD).sum(1).cpu()

    # -- generation and the latent space ------------------------------------------------------
    @torch.no_grad()
    def generate(
        self, z: Tensor, greedy: bool = True, generator: torch.Generator | None = None
    ) -> Tensor:
        """Decode codes ``z`` ``(n, latent_dim)`` into ids ``(n, seq_len)``: greedy (argmax) or
        sampled token by token; ``<pad>`` after ``<eos>``."""
        z = z.to(device=self.device, dtype=self.dtype)
        n, length = z.shape[0], self.data_shape[0]
        state = self._state(z)
        token = torch.full((n, 1), BOS, dtype=torch.long, device=self.device)
        done = torch.zeros(n, dtype=torch.bool, device=self.device)
        out = torch.full((n, length), PAD, dtype=torch.long, device=self.device)
        for t in range(length):
            h, state = self.dec_rnn(self.dec_embed(token), state)
            logits = self._logits(h[:, 0])
            if greedy:
                token = logits.argmax(-1, keepdim=True)
            else:
                token = torch.multinomial(F.softmax(logits, -1), 1, generator=generator)
            out[:, t] = torch.where(done, torch.full_like(token[:, 0], PAD), token[:, 0])
            done |= token[:, 0] == EOS
        return out

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Sentences ``(n, seq_len)`` (int64 ids) drawn from ``p(x | z) p(z)``."""
        z = torch.randn(n, self.latent_dim, generator=generator, device=self.device,
                        dtype=self.dtype)  # fmt: skip
        return self.generate(z, greedy=False, generator=generator)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """The posterior mean ``(batch, latent_dim)``."""
        return self.posterior_parameters(self.check_tokens(x))[0]

    def decode(self, z: Tensor) -> Tensor:
        """Greedy decoding of ``z`` ``(batch, latent_dim)``: ids ``(batch, seq_len)``."""
        return self.generate(z, greedy=True)


@torch.no_grad()
def homotopy(model: SentenceVAE, x_a: Tensor, x_b: Tensor, steps: int = 5, tokenizer=None):
    """Greedy decodings along the line between the codes of two sentences (section 4.3,
    table 8): ids ``(steps, seq_len)``, or a list of strings when a ``tokenizer`` is given."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2; got {steps}")
    z = model.encode(torch.stack([x_a.reshape(-1), x_b.reshape(-1)]))
    t = torch.linspace(0, 1, steps, device=z.device, dtype=z.dtype)[:, None]
    ids = model.generate(torch.lerp(z[0], z[1], t), greedy=True)
    return ids if tokenizer is None else tokenizer.decode_batch(ids)
