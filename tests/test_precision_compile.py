"""Mixed precision and torch.compile: a model that cannot run under them gets a clear error.

The Trainer runs the loss and its backward pass inside ``genzoo.train.precision.explained``:
a failure of ``torch.compile`` or of an operation that cannot take autocast's bfloat16 is
raised again as one line naming the model and what to do, with the original error chained.
(The compile failure through the Trainer is ``test_trainer_features``'s.)
"""

from __future__ import annotations

import pytest
import torch

import genzoo
from genzoo.train import precision


@pytest.fixture(scope="module")
def digits_binary() -> torch.Tensor:
    return genzoo.load_dataset("digits-binary", split="train")[:64]


def test_an_operation_refusing_bf16_names_the_model_and_the_fix():
    # torch.dot is not autocast on the CPU: a float32 vector against a bfloat16 product fails
    # (the persistent RBM's loss did, before it cast its product back)
    with (
        pytest.raises(RuntimeError) as info,
        precision.explained("rbm", "bf16-mixed", False),
        torch.autocast("cpu", dtype=torch.bfloat16),
    ):
        torch.dot(torch.ones(3), torch.ones(3, 3) @ torch.ones(3))
    message = str(info.value)
    assert message.startswith("rbm cannot train under precision 'bf16-mixed'")
    assert "--precision 32" in message and "\n" not in message
    assert "dtype" in message  # the operation's own complaint, in one line
    assert isinstance(info.value.__cause__, RuntimeError)  # the original error is kept


def test_the_persistent_rbm_trains_under_bf16_close_to_float32(digits_binary):
    losses = {}
    for setting in ("32", "bf16-mixed"):
        torch.manual_seed(0)
        model = genzoo.create("rbm", data=digits_binary, n_hidden=8, persistent=True, n_chains=8)
        trainer = genzoo.Trainer(steps=4, batch_size=16, precision=setting, progress=False,
                                 log_every=1)  # fmt: skip
        trainer.fit(model, digits_binary)
        losses[setting] = torch.tensor([row["cd"] for row in trainer.history])
    assert torch.allclose(losses["bf16-mixed"], losses["32"], rtol=0.02, atol=0.01), losses


def test_bf16_that_works_is_left_alone(digits_binary):
    model = genzoo.create("vae", data=digits_binary, network="mlp", hidden=16, latent_dim=2)
    trainer = genzoo.Trainer(steps=2, batch_size=16, precision="bf16-mixed", progress=False)
    trainer.fit(model, digits_binary)
    assert len(trainer.history) == 1


def test_explanation_tells_compiler_and_dtype_failures_from_the_models_own():
    unsupported = torch._dynamo.exc.Unsupported("double backward")
    assert precision.explanation(unsupported, "wgan-gp", "32", compiled=True).startswith(
        "wgan-gp cannot be compiled by torch.compile (Unsupported: double backward)"
    )
    assert precision.explanation(unsupported, "wgan-gp", "32", compiled=False) is None
    dtype = RuntimeError("expected both vectors to have same dtype, but found Float and BFloat16")
    assert "--precision 32" in precision.explanation(dtype, "rbm", "bf16-mixed", compiled=False)
    assert precision.explanation(dtype, "rbm", "32", compiled=False) is None
    # the same met while compiling: the compiler's error says little, its cause says what
    traced = torch._dynamo.exc.TorchRuntimeError("RuntimeError when making fake tensor call")
    traced.__cause__ = dtype
    both = precision.explanation(traced, "rbm", "bf16-mixed", compiled=True)
    assert both.startswith("rbm cannot be compiled by torch.compile under precision 'bf16-mixed'")
    assert "fake tensor call <- RuntimeError: expected both vectors to have same dtype" in both
    assert both.endswith("without --compile (compile=False) or with --precision 32")
    # the model's own errors are raised as they are
    assert precision.explanation(ValueError("bad shape"), "vae", "bf16-mixed", True) is None
    with (
        pytest.raises(ValueError, match="bad shape"),
        precision.explained("vae", "bf16-mixed", True),
    ):
        raise ValueError("bad shape")
