"""The classical CD-k / PCD training loop of Hinton's guide, fused by hand: ``fit_cd``.

It applies exactly the update ``genzoo.Trainer`` applies with an RBM's ``loss`` and SGD with
momentum (the CD-k / PCD statistics of :meth:`RBMLayer.cd_statistics`, weight decay, momentum),
but in shuffled mini-batch sweeps under ``no_grad`` with preallocated buffers, which makes it
several times faster for small layers; it is the ``fit_cd`` method of ``rbm`` and ``gb-rbm``.

References:
    Hinton, "A practical guide to training restricted Boltzmann machines", UTML TR 2010-003.
    Tieleman, "Training restricted Boltzmann machines using approximations to the likelihood
    gradient", ICML 2008.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from genzoo.models.energy.rbm_layer import check_binary
from genzoo.validation import check_finite, check_shape

if TYPE_CHECKING:
    from genzoo.models.energy.rbm import _RBM

#: ``fit_cd``'s choices for the dtype of its matrix products (see its docstring).
MATMUL_DTYPES = ("float32", "bfloat16")


def _low_matmul_dtype(name: str, device: torch.device, dtype: torch.dtype) -> torch.dtype | None:
    """The dtype ``fit_cd``'s products take for ``matmul_dtype=name``; ``None``: the model's."""
    if name == "float32":
        return None
    low = getattr(torch, name)
    if torch.device(device).type == "cuda" and not torch.cuda.is_bf16_supported():
        warnings.warn(
            f"this CUDA device has no {name} support; fit_cd computes in {dtype}", stacklevel=3
        )
        return None
    return low


@torch.no_grad()
def fit_cd(
    model: _RBM,
    data: Tensor,
    epochs: int = 1,
    batch_size: int = 100,
    lr: float = 0.05,
    generator: torch.Generator | None = None,
    matmul_dtype: str = "float32",
) -> list[dict[str, float]]:
    """Train ``model`` (an ``rbm`` or ``gb-rbm``) in place by the classical CD-k / PCD loop of
    Hinton's guide (2010); returns one row per epoch. The models' ``fit_cd`` method.

    Each epoch sweeps the data ``(N, *data_shape)`` once, in ``ceil(N / batch_size)``
    shuffled mini-batches of (nearly) equal size, and applies per batch exactly the update
    ``genzoo.Trainer`` applies with the model's ``loss`` and SGD: the CD-k / PCD statistics of
    :meth:`RBMLayer.cd_statistics`, weight decay ``weight_decay``, momentum ``momentum``
    (its velocity starts from zero at each call), step ``lr``. It runs under ``no_grad``
    with preallocated buffers (no autograd, no optimiser, no per-step logging), which makes
    it several times faster for small layers. ``generator`` (on the model's device) drives
    the shuffling and the Gibbs sampling (``None``: torch's global generator). The AIS base
    rate is the data's mean. A row is ``{"epoch", "reconstruction"}``: the mean squared
    error of the first reconstruction, CD only (the guide's imperfect progress signal;
    NaN for PCD, which computes none).

    ``matmul_dtype``: ``"float32"`` (default) computes everything in the model's own dtype
    (float32 unless the model was converted). ``"bfloat16"`` is mixed precision, standard
    in deep learning (Micikevicius et al. 2018, "Mixed precision training", for float16;
    Kalamkar et al. 2019, "A study of BFLOAT16 for deep learning training"): the three
    matrix products per Gibbs step and update (``c + u W``, ``b + W h``, ``u^T p``) take
    bfloat16 operands (``W`` is cast once per step), accumulate in float32 inside the
    kernel and return a bfloat16 result that is upcast before the bias is added, while the
    parameters, momentum buffers, biases, sampling probabilities and updates stay in the
    model's dtype. The products then carry bfloat16's relative error (about ``4e-3``); on
    CPUs with native bfloat16 (AVX512-BF16/AMX) and on recent GPUs they run about twice
    as fast. Where the device has no native bfloat16 it still runs (emulated, possibly
    slower; on a CUDA device without bfloat16 support it falls back to the model's dtype
    with a warning).
    """
    if matmul_dtype not in MATMUL_DTYPES:
        raise ValueError(
            f"matmul_dtype must be one of {', '.join(MATMUL_DTYPES)}; got {matmul_dtype!r}"
        )
    if model.optimizer != "sgd":
        raise ValueError("fit_cd applies SGD with momentum; use genzoo.Trainer for adam")
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise ValueError(
            f"need epochs >= 0, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}"
        )
    rbm = model.rbm
    check_shape(data, model.data_shape)
    x = data.to(model.device, model.dtype)
    if rbm.binary:  # 0/1 data are finite: one pass (half the time of check_input)
        check_binary(x, model.name or "rbm")
    else:
        check_finite(x, "data")
    v_all = model._to_visible(x).contiguous()  # (N, D)
    n_rows, n_vis, n_hid = v_all.shape[0], rbm.n_visible, rbm.n_hidden
    n_batches = max(1, math.ceil(n_rows / batch_size))
    n_max = math.ceil(n_rows / n_batches)
    m_max = model.chains.shape[0] if model.persistent else n_max
    rbm.data_mean.copy_(v_all.mean(0))
    w, b, c = rbm.weight, rbm.visible_bias, rbm.hidden_bias
    params = rbm.trained_parameters()
    opts = {"device": model.device, "dtype": model.dtype}
    # data rows end at n_max and model rows start there, so both phases are one block
    vv = torch.empty(n_max + m_max, n_vis, **opts)  # (rows, D)
    act = torch.empty(n_max + m_max, n_hid, **opts)  # c + u W, then p(h | v), (rows, H)
    uni_h = torch.empty(max(n_max, m_max), n_hid, **opts)
    noise = torch.empty(m_max, n_vis, **opts)
    hid = model.chain_hidden if model.persistent else torch.empty(n_max, n_hid, **opts)
    g_w = torch.empty_like(w)
    weights = torch.empty(n_max + m_max, **opts)
    velocity = [torch.zeros_like(p) for p in params] if model.momentum > 0 else None
    shape, history = None, []
    low = _low_matmul_dtype(matmul_dtype, model.device, model.dtype)
    w_mm = w if low is None else torch.empty_like(w, dtype=low)  # W as the products see it

    def affine_(bias: Tensor, x: Tensor, y: Tensor, out: Tensor) -> Tensor:
        """``out <- bias + x @ y`` (``y`` is ``w_mm`` or its transpose)."""
        if low is None:
            return torch.addmm(bias, x, y, out=out)
        return torch.add(torch.mm(x.to(low), y), bias, out=out)

    def visible_(h: Tensor, out: Tensor) -> None:  # out <- v ~ p(v | h), in place
        affine_(b, h, w_mm.T, out)
        if rbm.binary:
            torch.lt(noise[: len(out)].uniform_(generator=generator), out.sigmoid_(), out=out)
        else:
            out.add_(noise[: len(out)].normal_(generator=generator).mul_(rbm.log_sigma.exp()))

    def hidden_(v: Tensor, out: Tensor, a: Tensor) -> None:  # out <- h ~ p(h | v)
        affine_(c, rbm.scaled(v), w_mm, a)
        torch.lt(uni_h[: len(out)].uniform_(generator=generator), a.sigmoid_(), out=out)

    for epoch in range(epochs):
        perm = torch.randperm(n_rows, generator=generator, device=model.device)
        recon = torch.zeros((), **opts)
        for index in torch.tensor_split(perm, n_batches):
            n = index.shape[0]
            m = m_max if model.persistent else n
            data_v, model_v = vv[n_max - n : n_max], vv[n_max : n_max + m]
            rows, a = vv[n_max - n : n_max + m], act[n_max - n : n_max + m]
            torch.index_select(v_all, 0, index, out=data_v)
            if low is not None:
                w_mm.copy_(w)  # the one cast of W per step
            if model.persistent:  # continue the chains from their hidden state: h -> v -> h
                visible_(hid, model_v)
                for _ in range(model.cd_k - 1):
                    hidden_(model_v, hid, a[n:])
                    visible_(hid, model_v)
                affine_(c, rbm.scaled(rows), w_mm, a).sigmoid_()  # both phases
                torch.lt(uni_h[:m].uniform_(generator=generator), a[n:], out=hid)
            else:  # CD-k: k Gibbs steps from the data
                affine_(c, rbm.scaled(data_v), w_mm, a[:n]).sigmoid_()
                torch.lt(uni_h[:n].uniform_(generator=generator), a[:n], out=hid[:n])
                affine_(b, hid[:n], w_mm.T, model_v)
                mean = model_v.sigmoid_() if rbm.binary else model_v
                recon += (data_v - mean).pow(2).sum() / n
                if rbm.binary:
                    torch.lt(noise[:n].uniform_(generator=generator), mean, out=model_v)
                else:
                    model_v.add_(noise[:n].normal_(generator=generator) * rbm.log_sigma.exp())
                for _ in range(model.cd_k - 1):
                    hidden_(model_v, hid[:n], a[n:])
                    visible_(hid[:n], model_v)
                affine_(c, rbm.scaled(model_v), w_mm, a[n:]).sigmoid_()
            if shape != (n, m):  # +1/n for data rows, -1/m for model rows
                shape = (n, m)
                weights[:n].fill_(1 / n)
                weights[n : n + m].fill_(-1 / m)
            stats = rbm.cd_statistics(rows, a, weights[: n + m], out=g_w, matmul_dtype=low)
            if model.weight_decay > 0:
                g_w.sub_(w, alpha=model.weight_decay)  # minus the gradient of wd/2 |W|^2
            for i, (p, s) in enumerate(zip(params, stats, strict=True)):
                if velocity is None:  # SGD: p -= lr grad, with s = -grad
                    p.add_(s, alpha=lr)
                else:  # SGD with momentum: buf = mu buf + grad; p -= lr buf
                    p.add_(velocity[i].mul_(model.momentum).add_(s), alpha=lr)
        if model.persistent:
            model.chains.copy_(vv[n_max:])
        history.append(
            {
                "epoch": epoch + 1,
                "reconstruction": math.nan if model.persistent else recon.item() / n_batches,
            }
        )
    model.invalidate_log_z()
    return history
