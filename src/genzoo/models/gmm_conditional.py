"""The class-conditional Gaussian mixture: one mixture per class, the generative classifier.

``PerClassMixtures`` is a part of ``genzoo.models.mixtures.GaussianMixture``: a ``gmm`` built
with ``n_classes = C`` holds ``C`` mixtures (``classes[k]``, each with the model's settings)
and the class frequencies ``p(c)`` of its training data. Then

    p(x | c) = sum_m pi_cm N(x | mu_cm, Sigma_cm),   each fitted by EM on the examples of c,
    p(c | x) = p(x | c) p(c) / sum_k p(x | k) p(k)   (Bayes' rule: ``predict_class_proba``).

With one full-covariance component per class this is quadratic discriminant analysis; with
more, each class's density is a mixture (Hastie & Tibshirani 1996, "Discriminant analysis by
Gaussian mixtures", JRSS B 58(1)). As a ``Mixture`` (components, responsibilities) the model
is the joint mixture ``p(x) = sum_c p(c) sum_m pi_cm N(x | mu_cm, Sigma_cm)`` of all ``C x M``
components, class by class.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from genzoo.errors import DataError
from genzoo.models import em_shards
from genzoo.validation import check_finite, check_shape


class PerClassMixtures:
    """The conditional half of ``GaussianMixture`` (mixin; see the module). Every method
    here is called by the model's own when it was built with ``n_classes > 0``."""

    def _build_classes(self, sizes: list[int | str]) -> None:
        """A mixture per class with the model's settings and ``sizes[k]`` components (an
        integer, or ``"auto"``: chosen by BIC on the class's examples when initialised)."""
        settings = {**self.config, "n_classes": 0}
        self.classes = nn.ModuleList(
            type(self)(**{**settings, "n_components": size, "seed": self.seed + k})
            for k, size in enumerate(sizes)
        ).to(device=self.device, dtype=self.dtype)
        self._record_class_sizes()

    def _record_class_sizes(self) -> None:
        """Each class's K in ``n_components`` and ``config`` once none is left to choose, so
        a saved model records them and ``genzoo.load`` rebuilds mixtures of those sizes."""
        if any(mixture.auto for mixture in self.classes):
            return
        sizes = [mixture.n_components for mixture in self.classes]
        self.auto = False
        if len(set(sizes)) > 1 or isinstance(self.config["n_components"], (list, str)):
            self.n_components = sizes
            self._config["n_components"] = sizes

    def _split_by_class(self, data: Tensor, c: Any, what: str) -> tuple[list[Tensor], list[int]]:
        """The rows of ``data`` of each class and the count of each class's rows (over every
        rank, in a sharded fit), refusing a class with too few of them."""
        check_shape(data, self.data_shape, what)
        check_finite(data, what)
        c = self.check_condition(c, len(data)).to(data.device)
        parts = [data[c == k] for k in range(self.n_classes)]
        counts = [len(part) for part in parts]
        if self._group is not None:  # the classes' rows on every rank together
            local = torch.tensor(counts, dtype=torch.float64, device=self.device)
            counts = [round(v) for v in em_shards.all_reduce_sum([local], self._group)[0].tolist()]
        for k, count in enumerate(counts):
            if not self.classes[k].auto and count < self.classes[k].n_components:
                raise DataError(
                    f"class {k} has {count} examples in the {what}, fewer than the "
                    f"{self.classes[k].n_components} components of its mixture: lower "
                    "n_components or give more examples of it"
                )
        return parts, counts

    @torch.no_grad()
    def _initialize_per_class(self, data: Tensor, c: Any) -> None:
        parts, _ = self._split_by_class(data, c, "data")
        self.set_class_prior(c)
        for mixture, part in zip(self.classes, parts, strict=True):
            mixture.initialize(part)  # n_components="auto": its K by BIC on its examples
        self._record_class_sizes()

    @torch.no_grad()
    def _fit_step_per_class(self, data: Tensor, c: Any) -> dict[str, float]:
        """One EM iteration of every class's mixture on its examples; the returned values
        are means over the examples (``log_likelihood``: of ``log p(x | c)``). Sharded,
        each class's mixture sums its statistics over the ranks, and the means weigh the
        classes by their rows on every rank."""
        if not self.initialized:  # as initialize(data, c): every class and the class prior
            self._refuse_uninitialized_shard()
            self._initialize_per_class(data, c)
        parts, counts = self._split_by_class(data, c, "data")
        n = sum(counts)
        total = {"log_likelihood": 0.0, "improvement": 0.0}
        for mixture, part, count in zip(self.classes, parts, counts, strict=True):
            step = mixture.fit_step(part)
            for key in total:
                total[key] += step[key] * count / n
        return {**total, "converged": float(self.converged)}

    def _log_prob_per_class(self, x: Tensor, c: Any) -> Tensor:
        x = self.check_input(x)
        c = self.check_condition(c, len(x))
        out = x.new_empty(len(x))
        for k, mixture in enumerate(self.classes):
            rows = c == k
            if bool(rows.any()):
                out[rows] = mixture.log_prob(x[rows])
        return out

    @torch.no_grad()
    def _sample_per_class(self, n: int, generator: torch.Generator | None, c: Any) -> Tensor:
        c = self.check_condition(c, n)
        out = torch.empty(n, *self.data_shape, device=self.device, dtype=self.dtype)
        for k, mixture in enumerate(self.classes):
            rows = c == k
            count = int(rows.sum())
            if count:
                out[rows] = mixture.sample(count, generator=generator)
        return out

    def _joint_log_prob(self, x: Tensor) -> Tensor:
        """``log p(c) + log pi_cm + log N(x | mu_cm, Sigma_cm)`` of every component of every
        class, ``(n, C * M)``, class by class."""
        x = self.check_input(x)
        prior = self.class_log_prior.to(x)
        parts = [mixture._weighted_log_prob(x) + prior[k] for k, mixture in enumerate(self.classes)]
        return torch.cat(parts, 1)

    @torch.no_grad()
    def _components_per_class(self) -> tuple[Tensor, Tensor, Tensor]:
        parts = [mixture.components() for mixture in self.classes]
        prior = self.class_log_prior.exp()
        weights = torch.cat([w * prior[k].to(w) for k, (w, _, _) in enumerate(parts)])
        means = torch.cat([m for _, m, _ in parts])
        covariances = torch.cat([cov for _, _, cov in parts])
        return weights, means, covariances

    def _unconditional_only(self, what: str) -> None:
        if self.n_classes:
            raise DataError(
                f"{what} is for a gmm without a condition; this one has a mixture per class "
                f"({self.n_classes} classes): use each class's, model.classes[k]"
            )

    @property
    def _per_class_converged(self) -> bool:
        return all(mixture.converged for mixture in self.classes)
