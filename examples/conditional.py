"""Conditional generation: the survey's Q(Y | X), a generative classifier, a conditional flow.

The survey starts from a conditional model, Q(Y | X). ``sentiment-synthetic`` draws labels Y
from a known P(Y | X) given four features X, so the learned ``categorical`` Q(Y | X) is checked
against the truth by the exact KL. A ``gmm`` with one mixture per class of the wine table is a
generative classifier (Bayes' rule), compared with scikit-learn's ``LogisticRegression`` on the
same split. A RealNVP conditioned on the arm of the moons samples each arm on demand; it is
saved, reloaded and sampled given a class.

    python examples/conditional.py [--steps 1500] [--out DIR]
"""

import argparse
import tempfile
from pathlib import Path

import torch
from sklearn.linear_model import LogisticRegression

import genzoo
from genzoo.data import true_conditional_probs
from genzoo.metrics import conditional_kl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="gradient steps of Q(Y | X)")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="genzoo-conditional-"))
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    # Q(Y | X): labels y (n, 1) given features x (n, 4); the truth P(Y | X) is known
    y, x = genzoo.load_dataset("sentiment-synthetic", n=10_000, condition=True)
    _, x_test = genzoo.load_dataset("sentiment-synthetic", split="test", n=5_000, condition=True)
    q = genzoo.create("categorical", data=y, condition=x, hidden=[64])
    genzoo.Trainer(steps=args.steps, batch_size=256, lr=1e-2, progress=False).fit(q, y, condition=x)
    kl = conditional_kl(q, x_test, true_conditional_probs("sentiment-synthetic", x_test))
    print(f"categorical Q(Y | X): KL(P || Q) = {kl:.4f} nats per input (exact, test inputs)")

    # one Gaussian mixture per class: classify by Bayes' rule
    xw, cw = genzoo.load_dataset("wine", condition=True)
    xw_test, cw_test = genzoo.load_dataset("wine", split="test", condition=True)
    gmm = genzoo.create("gmm", data=xw, condition=cw, n_components=1)
    genzoo.Trainer(steps=100, batch_size=len(xw), progress=False).fit(gmm, xw, condition=cw)
    bayes = (gmm.predict_class(xw_test) == cw_test).double().mean().item()
    logistic = LogisticRegression(max_iter=2000).fit(xw.numpy(), cw.numpy())
    print(
        f"wine: class-conditional gmm by Bayes' rule {bayes:.3f} test accuracy, "
        f"LogisticRegression {logistic.score(xw_test.numpy(), cw_test.numpy()):.3f}"
    )

    # a flow of the moons given the arm: sample each arm, save, reload
    xm, cm = genzoo.load_dataset("moons", n=4_000, condition=True)
    xm_test, cm_test = genzoo.load_dataset("moons", split="test", n=2_000, condition=True)
    flow = genzoo.create("realnvp", data=xm, condition=cm, n_layers=4, hidden=32)
    genzoo.Trainer(steps=300, batch_size=256, lr=3e-3, progress=False).fit(flow, xm, condition=cm)
    with torch.no_grad():
        nll = -flow.log_prob(xm_test, c=cm_test).mean().item()
    print(f"realnvp given the arm: test NLL {nll:.3f} nats, -log p(x | arm) (exact)")
    flow.save(out / "realnvp-moons")
    again = genzoo.load(out / "realnvp-moons")
    arm = again.sample(500, generator=torch.Generator().manual_seed(0), c=1)
    centre = ", ".join(f"{v:.2f}" for v in arm.mean(0).tolist())
    print(f"wrote {out / 'realnvp-moons'}; 500 samples given arm 1, centred at ({centre})")


if __name__ == "__main__":
    main()
