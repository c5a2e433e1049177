"""Gaussian mixture models fitted by expectation-maximisation.

The maths (log densities, sufficient statistics, M-step, k-means++) lives in
``genzoo.models.gmm_math``; online EM on a stream in ``genzoo.models.gmm_online``; the choice
of K by BIC in ``genzoo.models.gmm_select``; EM over a file larger than memory in
``genzoo.models.gmm_files``; one mixture per class (``n_classes``, the generative classifier)
in ``genzoo.models.gmm_conditional``. This module holds the model: its state and
initialisation, the batch EM step the trainer calls (on the whole data or on chunks), and the
protocol methods (``log_prob``, ``sample``, ``loss``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn.functional import one_hot

from genzoo.errors import DataError
from genzoo.models import em_shards
from genzoo.models import gmm_math as gm
from genzoo.models.base import GenerativeModel
from genzoo.models.conditioning import class_log_posterior
from genzoo.models.gmm_conditional import PerClassMixtures
from genzoo.models.gmm_math import STATS_DTYPE
from genzoo.models.gmm_online import OnlineEM
from genzoo.models.gmm_select import ModelSelection
from genzoo.registry import register_model
from genzoo.validation import check_finite, check_shape

COVARIANCE_TYPES = tuple(gm.FORMS)
INITS = ("kmeans++", "random")
#: Lloyd iterations after k-means++ seeding.
LLOYD_STEPS = 10
#: Cap on the numbers held by one intermediate of the chunked E-step (rows x K x d): small
#: on CPU so that a chunk stays in cache (measured fastest), large on accelerators.
CHUNK_ELEMENTS = {"cpu": 2**18}
DEFAULT_CHUNK_ELEMENTS = 2**24


@register_model("gmm", family="mixture")
class GaussianMixture(PerClassMixtures, OnlineEM, ModelSelection, GenerativeModel):
    """Gaussian mixture fitted by EM, with k-means++ initialisation; exact log-likelihood.

    p(x) = sum_k pi_k N(x | mu_k, Sigma_k). Each ``fit_step`` is one EM iteration over the
    whole training set (Dempster, Laird & Rubin 1977): an E-step in chunks of rows that
    accumulates the sufficient statistics N_k = sum_n r_nk, sum_n r_nk x_n and
    sum_n r_nk x_n x_n^T (centred; responsibilities are never held for the whole data set), then a
    closed-form M-step. The mean log-likelihood never decreases from one step to the next.
    The E-step runs in the model's dtype (float32 or float64), on statistics centred on
    the current means so float32 loses nothing to cancellation; statistics are summed
    over chunks, and the M-step solved, in float64.

    Across processes (``torchrun``), ``with model.sharded(data):`` makes each batch EM step
    take this rank's rows only and sum the statistics over the ranks, so N processes fit one
    model on the union of their rows (the trainer does this by itself; see ``sharded``).

    Arguments:
        data_shape: shape of one example; examples are treated as flat vectors of
            ``prod(data_shape)`` numbers.
        n_components: number of mixture components K, or ``"auto"``: ``initialize`` then
            fits every K in ``k_range`` by EM and keeps the one of lowest BIC (Schwarz
            1978) on the data. The chosen K replaces ``"auto"`` in ``config`` (and
            ``n_components``), so a saved model records it and ``genzoo.load`` rebuilds
            buffers of that size; ``bic_scores_`` (K -> BIC) is kept in memory only.
        covariance_type: ``"full"`` (one d x d matrix per component), ``"diag"`` (diagonal
            ones), ``"tied"`` (one d x d matrix shared by all components) or
            ``"spherical"`` (var_k times the identity), as in scikit-learn.
        tol: ``converged`` becomes True once the mean log-likelihood improves by less.
        reg_covar: added to the diagonal of every covariance (keeps them invertible).
        init: ``"kmeans++"`` (k-means++ seeding, Arthur & Vassilvitskii 2007, then Lloyd
            iterations) or ``"random"`` (random responsibilities).
        n_init: number of initialisations tried in ``initialize``; the one whose
            parameters give the data the highest likelihood is kept (scikit-learn instead
            runs EM to the end from each).
        seed: seed of the initialisation.
        chunk_size: most rows per E-step chunk (also capped so that a (rows, K, d)
            intermediate holds at most 2**18 numbers on CPU, 2**24 on GPU).
        k_range: ``[low, high]``, the Ks tried when ``n_components="auto"``.
        online: if True, each ``fit_step`` is one shuffled pass of online EM over the data
            in mini-batches of ``online_batch`` rows instead of one batch EM step (its
            ``improvement`` is then between passes, and noisy). ``online_step(batch)``
            performs one online update whatever this flag (for streams).
        kappa: online EM step size (t + 2)^-kappa, in (0.5, 1] (Cappe & Moulines 2009).
        online_batch: rows per online-EM mini-batch when ``online=True``.
        n_classes: ``C`` > 0 makes it class-conditional: one mixture per class
            (``classes[k]``, these settings each, seeds ``seed + k``), fitted by EM on the
            examples of its class, and the class frequencies ``p(c)``; ``log_prob(x, c)`` is
            ``log p(x | c)``, ``sample(n, c=...)`` draws from a class's mixture, and
            ``predict_class_proba`` / ``predict_class`` classify by Bayes' rule (the
            generative classifier; ``predict_proba`` / ``predict`` stay the responsibilities
            and component of the joint mixture). ``n_components`` is then every class's K,
            a list of each class's, or ``"auto"``: each class's K by BIC on its own
            examples, recorded as that list in ``config``. No ``online_step`` or
            ``fit_step_chunks``.

    References:
        Dempster, Laird & Rubin (1977). Maximum likelihood from incomplete data via the EM
        algorithm. Journal of the Royal Statistical Society B 39(1).
        Arthur & Vassilvitskii (2007). k-means++: the advantages of careful seeding. SODA.
        Cappe & Moulines (2009). On-line expectation-maximization algorithm for latent
        data models. Journal of the Royal Statistical Society B 71(3).
        Schwarz (1978). Estimating the dimension of a model. Annals of Statistics 6(2).
        Hastie & Tibshirani (1996). Discriminant analysis by Gaussian mixtures. Journal of
        the Royal Statistical Society B 58(1).

    Example:
        >>> import torch, genzoo
        >>> x = torch.randn(500, 2)
        >>> model = genzoo.create("gmm", data=x, n_components=3)
        >>> for _ in range(20):
        ...     stats = model.fit_step(x)
        >>> model.log_prob(x).shape, model.sample(4).shape
        (torch.Size([500]), torch.Size([4, 2]))
    """

    density = "exact"
    players = ()
    condition_kinds = ("discrete",)

    def __init__(
        self,
        data_shape: Sequence[int],
        n_components: int | str | list[int] = 8,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        init: str = "kmeans++",
        n_init: int = 1,
        seed: int = 0,
        chunk_size: int = 65_536,
        k_range: Sequence[int] = (1, 10),
        online: bool = False,
        kappa: float = 0.6,
        online_batch: int = 1024,
        n_classes: int = 0,
    ) -> None:
        super().__init__(data_shape)
        self._group: Any = None  # the process group of a sharded fit (see ``sharded``)
        if covariance_type not in gm.FORMS:
            raise ValueError(
                f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}"
            )
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        k_range = tuple(k_range)
        if len(k_range) != 2 or not all(_is_count(v) for v in k_range) or k_range[0] > k_range[1]:
            raise ValueError(f"k_range must be [low, high] with 1 <= low <= high, got {k_range!r}")
        if n_components == "auto":
            n_components = k_range[1]  # placeholder shapes until initialize chooses K
            self.auto = True
        else:
            self.auto = False
        per_class = None
        if isinstance(n_components, (list, tuple)):  # each class's K (given, or chosen by BIC)
            per_class = list(n_components)
            if not (n_classes and len(per_class) == n_classes and all(map(_is_count, per_class))):
                raise ValueError(
                    f"a list n_components gives each class's K: {n_classes or 'n_classes'} "
                    f"integers >= 1 for a gmm with n_classes, got {n_components!r}"
                )
            n_components = max(per_class)
        for name, value in (
            ("n_components", n_components),
            ("n_init", n_init),
            ("chunk_size", chunk_size),
            ("online_batch", online_batch),
        ):
            if not _is_count(value):
                extra = " or 'auto'" if name == "n_components" else ""
                raise ValueError(f"{name} must be an integer >= 1{extra}, got {value!r}")
        if not 0.5 < kappa <= 1:
            raise ValueError(f"kappa must be in (0.5, 1] (Cappe & Moulines 2009), got {kappa!r}")
        if not (tol >= 0 and math.isfinite(tol)):
            raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
        if not (reg_covar >= 0 and math.isfinite(reg_covar)):
            raise ValueError(f"reg_covar must be a finite number >= 0, got {reg_covar!r}")
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = float(tol)
        self.reg_covar = float(reg_covar)
        self.init = init
        self.n_init = n_init
        self.seed = int(seed)
        self.chunk_size = chunk_size
        self.k_range = k_range
        self.online = bool(online)
        self.kappa = float(kappa)
        self.online_batch = online_batch
        self.setup_condition(n_classes, 0)
        if self.n_classes:  # one mixture per class, with these settings
            self._build_classes(per_class or [self.config["n_components"]] * self.n_classes)
            return

        k, d = n_components, self.data_dim
        cov = self.form.identity(k, d)
        self.register_buffer("weights_", torch.full((k,), 1.0 / k))
        self.register_buffer("means_", torch.zeros(k, d))
        self.register_buffer("covariances_", cov)
        self.register_buffer("precisions_cholesky_", cov.clone())
        # EM progress, kept in the state so a resumed run continues where it stopped.
        self.register_buffer("log_likelihood_", torch.tensor(-math.inf))
        self.register_buffer("n_iter_", torch.tensor(0))
        self.register_buffer("converged_", torch.tensor(False))
        self.register_buffer("initialized_", torch.tensor(False))
        # Online EM updates taken so far: t in the step size (t + 2)^-kappa.
        self.register_buffer("n_updates_", torch.tensor(0))
        # The last log-likelihood at full precision (the buffer has the model's dtype).
        self._last_ll: float | None = None
        self.register_load_state_dict_post_hook(_forget_last_ll)

    # -- state ---------------------------------------------------------------------------------
    @property
    def form(self) -> gm.CovarianceForm:
        """The maths of this model's covariance type."""
        return gm.FORMS[self.covariance_type]

    @property
    def converged(self) -> bool:
        """True once an EM step improved the mean log-likelihood by less than ``tol`` (for
        every class's mixture, with ``n_classes``)."""
        if self.n_classes:
            return self._per_class_converged
        return bool(self.converged_)

    def _leaves(self) -> list[GaussianMixture]:
        """The mixtures that hold parameters: each class's with ``n_classes``, else itself."""
        return list(self.classes) if self.n_classes else [self]

    @property
    def initialized(self) -> bool:
        """Whether ``initialize`` has run (for every class's mixture, with ``n_classes``)."""
        return all(bool(m.initialized_) for m in self._leaves())

    def _set_parameters(self, weights: Tensor, means: Tensor, covariances: Tensor) -> None:
        """Store new parameters and the Cholesky factors of their precisions."""
        prec_chol = self.form.precision_cholesky(covariances.to(STATS_DTYPE))
        self.weights_.copy_(weights)
        self.means_.copy_(means)
        self.covariances_.copy_(covariances)
        self.precisions_cholesky_.copy_(prec_chol)

    def _rows(self) -> int:
        """Rows per E-step chunk."""
        per_row = self.form.row_size(self.n_components, self.data_dim)
        cap = CHUNK_ELEMENTS.get(self.device.type, DEFAULT_CHUNK_ELEMENTS)
        return max(1, min(self.chunk_size, cap // per_row))

    def _flat(self, x: Tensor) -> Tensor:
        """Examples as flat vectors on the model's device and dtype: (n, *shape) -> (n, d)."""
        return x.reshape(x.shape[0], self.data_dim).to(device=self.device, dtype=self.dtype)

    # -- initialisation ------------------------------------------------------------------------
    @torch.no_grad()
    def initialize(self, data: Tensor, c: Tensor | None = None) -> None:
        """Initial weights, means and covariances from k-means++ (or random responsibilities).

        With ``n_init > 1`` the initialisation giving ``data`` the highest mean
        log-likelihood is kept. Resets the EM progress (``n_iter_``, ``converged_``), except
        with ``n_components="auto"``, which keeps the chosen K's fit (see ``_choose_k``).
        With ``n_classes``, each class's mixture is initialised on its examples (classes
        ``c``) and the class frequencies become the prior.
        """
        if self.n_classes:
            return self._initialize_per_class(data, c)
        self.check_condition(c)
        check_shape(data, self.data_shape, "data")
        check_finite(data, "data")
        if self.auto:
            self._choose_k(data)
            return
        x = self._flat(data)
        if x.shape[0] < self.n_components:
            raise DataError(
                f"n_components={self.n_components} is more than the {x.shape[0]} examples "
                "given: lower n_components or give more data"
            )
        generator = torch.Generator().manual_seed(self.seed)
        best, best_ll = None, -math.inf
        for _ in range(self.n_init):
            self._set_parameters(*self._initial_parameters(x, generator))
            ll = self._e_step(x, statistics=False)[0] / x.shape[0] if self.n_init > 1 else 0.0
            if best is None or ll > best_ll:
                best_ll = ll
                best = [t.clone() for t in (self.weights_, self.means_, self.covariances_)]
        self._set_parameters(*best)
        self.log_likelihood_.fill_(-math.inf)
        self._last_ll = None
        self.n_iter_.zero_()
        self.n_updates_.zero_()
        self.converged_.fill_(False)
        self.initialized_.fill_(True)

    def _initial_parameters(self, x: Tensor, generator: torch.Generator):
        """One initialisation: x (n,d) -> weights (k,), means (k,d), covariances (float64)."""
        k, rows = self.n_components, self._rows()
        if self.init == "kmeans++":
            shift = gm.kmeans_plusplus(x, k, generator)
            shift, labels = gm.lloyd(x, shift, LLOYD_STEPS, rows)
            resps = (one_hot(lab, k).to(x.dtype) for lab in labels.split(rows))
        else:
            shift = x.mean(0).expand(k, -1)
            resps = (
                torch.rand(len(part), k, generator=generator, dtype=torch.float64).to(x)
                for part in x.split(rows)
            )
        stats = None
        for part, resp in zip(x.split(rows), resps, strict=True):
            resp = resp / resp.sum(1, keepdim=True)  # (rows, k)
            stats = _add(stats, gm.chunk_statistics(part, resp, shift, self.form))
        shift = shift.to(STATS_DTYPE)
        return gm.m_step(*stats, shift, x.shape[0], self.reg_covar, self.form)

    # -- EM across processes ----------------------------------------------------------------------
    @property
    def shardable(self) -> bool:
        """Whether ``sharded`` EM across processes is available: batch EM, not online EM
        (whose updates follow one another through the mini-batches)."""
        return not self.online

    @contextlib.contextmanager
    def sharded(
        self, data: Tensor | None = None, c: Tensor | None = None, group: Any = None
    ) -> Iterator[GaussianMixture]:
        """EM across the processes of a ``torch.distributed`` group: within this context,
        ``fit_step(rows)`` and ``fit_step_chunks(chunks)`` take this rank's rows only and sum
        the sufficient statistics (N_k, sum r x, sum r x x^T or its diagonal, pooled or
        spherical form), the log-likelihood and the row count over the ranks with one
        ``all_reduce`` before the M-step, so every rank takes the same step, the one a single
        process takes on the union of the rows (up to the rounding of the sums). The
        stopping rule reads the summed log-likelihood, so every rank stops at the same step.

        On entry, rank 0 initialises the model on ``data`` (and classes ``c``) if it is not
        initialised yet (give the whole training set, or a sample common to the ranks, to
        start where a single process would), and its state is broadcast to every rank
        (``n_components="auto"``: the K chosen on rank 0 too). Every rank must enter and
        then call the same steps; ``group`` is the process group (the default one when
        None). With ``n_classes``, each class's mixture sums its statistics over the ranks.
        Online EM is not sharded (``online=True`` is refused).
        """
        if not self.shardable:
            raise ValueError("online EM is not sharded across processes: use batch EM "
                             "(online=False) for a fit across processes")  # fmt: skip
        em_shards.require_group()
        if data is not None and em_shards.rank(group) == 0 and not self.initialized:
            self.initialize(data, c)
        self._broadcast_from_rank_zero(group)
        mixtures = [self, *self.classes] if self.n_classes else [self]
        previous = [m._group for m in mixtures]
        for m in mixtures:
            m._group = em_shards.group_or_default(group)
        try:
            yield self
        finally:
            for m, before in zip(mixtures, previous, strict=True):
                m._group = before

    def _broadcast_from_rank_zero(self, group: Any) -> None:
        """Rank 0's K, parameters, EM progress and last log-likelihood on every rank."""
        mine = {"k": self.n_components, "auto": self.auto,
                "last_ll": [m._last_ll for m in self._leaves()]}  # fmt: skip
        theirs = em_shards.broadcast_object(mine, group)
        if self.n_classes and theirs["k"] != mine["k"]:
            # rank 0 chose each class's K by BIC: mixtures of its sizes, then its values
            self._build_classes(theirs["k"])
        elif not self.n_classes and (theirs["k"], theirs["auto"]) != (mine["k"], mine["auto"]):
            # rank 0 chose K by BIC (n_components="auto"): take its size, then its values
            config = {**self.config, "n_components": theirs["k"]}
            self._adopt(type(self)(**config).to(device=self.device, dtype=self.dtype))
            self.auto = theirs["auto"]
        em_shards.broadcast_state(self, group)
        for m, last in zip(self._leaves(), theirs["last_ll"], strict=True):
            m._last_ll = last

    def _sum_over_ranks(self, total: float, n: int, stats) -> tuple[float, int, tuple]:
        """The summed log-likelihood, row count and statistics of every rank (sharded EM);
        a rank without rows adds zeros."""
        if stats is None:
            k, d = self.n_components, self.data_dim
            shapes = ((k,), (k, d), self.form.shape(k, d))
            stats = tuple(torch.zeros(s, dtype=STATS_DTYPE, device=self.device) for s in shapes)
        scalars = torch.tensor([total, n], dtype=STATS_DTYPE, device=self.device)
        *stats, scalars = em_shards.all_reduce_sum([*stats, scalars], self._group, agree=2)
        return float(scalars[0]), round(float(scalars[1])), tuple(stats)

    # -- EM --------------------------------------------------------------------------------------
    def _log_joint(self, x: Tensor):
        """Chunks of (x - c, log pi_k + log N(x | k)) for x (n,d): ((rows,d), (rows,k)).

        Data and means are centred on the mixture mean c first, which keeps float32
        accurate for data far from the origin.
        """
        center = self.weights_ @ self.means_  # (d,)
        means = self.means_ - center
        log_w = self.weights_.log()
        for part in x.split(self._rows()):
            xc = part - center
            yield xc, self.form.log_prob(xc, means, self.precisions_cholesky_).add_(log_w)

    def _e_step(self, x: Tensor, statistics: bool = True):
        """Summed log-likelihood of x (n,d) and, if asked, the sufficient statistics.

        The statistics (float64) are centred on the current means (see ``chunk_statistics``).
        """
        total = torch.zeros((), dtype=STATS_DTYPE, device=x.device)
        stats = None
        means = self.means_ - self.weights_ @ self.means_  # as centred in _log_joint
        for xc, log_p in self._log_joint(x):
            resp, log_norm = gm.log_normalize(log_p)
            total += log_norm.sum(dtype=STATS_DTYPE)
            if statistics:
                stats = _add(stats, gm.chunk_statistics(xc, resp, means, self.form))
        return float(total), stats

    @torch.no_grad()
    def fit_step(self, data: Tensor, c: Tensor | None = None) -> dict[str, float]:
        """One EM iteration over ``data`` (the whole training set), Dempster et al. 1977.

        Returns ``log_likelihood`` (mean per-example log-likelihood in nats of the
        parameters *before* this step's M-step), ``improvement`` over the previous step
        (reported as 0.0 on the first step, which has nothing to compare with; every value
        is finite for the trainer's guard), and ``converged`` (1.0 once the improvement is
        below ``tol``). With ``n_classes``, one step of every class's mixture on its examples
        (classes ``c``), the values averaged over the examples.
        """
        if self.n_classes:
            return self._fit_step_per_class(data, c)
        self.check_condition(c)
        check_shape(data, self.data_shape, "data")
        if not bool(self.initialized_):
            self._refuse_uninitialized_shard()
            self.initialize(data)
        if self.online:  # one pass of mini-batch online EM instead of one batch EM step
            return self._record_step(self._online_pass(self._flat(data)))
        return self._batch_em_step([data], "data")

    @torch.no_grad()
    def fit_step_chunks(self, chunks: Iterable[Tensor]) -> dict[str, float]:
        """One batch EM iteration over data given as chunks (n_i, *data_shape), in one pass.

        For data that do not fit in memory (see ``fit_gmm_memmap``): the sufficient
        statistics are summed over the chunks, so memory depends on the chunk size, not on
        the number of examples. The model must be initialised. Same result as ``fit_step``
        on the concatenated chunks (up to rounding); returns the same metrics.
        """
        self._unconditional_only("fit_step_chunks")
        if not bool(self.initialized_):
            self._refuse_uninitialized_shard()
            raise RuntimeError("initialize the model (on a sample of the data) first")
        return self._batch_em_step(chunks, "chunk")

    def _batch_em_step(self, chunks: Iterable[Tensor], what: str) -> dict[str, float]:
        """One batch EM iteration over the data given as chunks (the whole set in one piece,
        or pieces read in turn): the E-step's sufficient statistics are summed over them,
        responsibilities chunk by chunk, then the closed-form M-step maximises the expected
        complete-data log-likelihood. Sharded (see ``sharded``), the sums of this rank's
        chunks are then summed over the ranks."""
        total, n, stats = 0.0, 0, None
        step = f"EM step {int(self.n_iter_) + 1}"
        for chunk in chunks:
            check_shape(chunk, self.data_shape, what)
            if self._group is not None and chunk.shape[0] == 0:
                continue  # a rank may hold no rows of a class (or of a tiny data set)
            x = self._flat(chunk)
            part_total, part = self._e_step(x)
            gm.check_log_likelihood(part_total, chunk, what, step)
            total += part_total
            n += x.shape[0]
            stats = _add(stats, part)
        if self._group is not None:
            total, n, stats = self._sum_over_ranks(total, n, stats)
            if not math.isfinite(total):  # another rank's rows: its own check names them
                gm.check_log_likelihood(total, torch.zeros(0), what, f"{step} (another rank)")
        means = self.means_.to(STATS_DTYPE)
        self._set_parameters(*gm.m_step(*stats, means, n, self.reg_covar, self.form))
        return self._record_step(total / n)

    def _refuse_uninitialized_shard(self) -> None:
        """A sharded step cannot initialise on one rank's rows: the ranks would differ."""
        if self._group is not None:
            raise RuntimeError(
                "a sharded EM fit starts from one initialisation on every rank: enter "
                "model.sharded(data) with the data (or a common sample) to initialise on"
            )

    def _record_step(self, ll: float) -> dict[str, float]:
        """Log-likelihood bookkeeping after one ``fit_step``; its returned metrics."""
        prev = self._last_ll if self._last_ll is not None else float(self.log_likelihood_)
        improvement = ll - prev
        self._last_ll = ll
        self.log_likelihood_.fill_(ll)
        self.n_iter_.add_(1)
        if improvement < self.tol:
            self.converged_.fill_(True)
        return {
            "log_likelihood": ll,
            "improvement": improvement if math.isfinite(improvement) else 0.0,
            "converged": float(self.converged),
        }

    @torch.no_grad()
    def fit(self, data: Tensor, max_iter: int = 100) -> GaussianMixture:
        """Initialise if needed, then run EM until converged or ``max_iter`` steps."""
        for _ in range(max_iter):
            self.fit_step(data)
            if self.converged:
                break
        return self

    # -- the protocol ----------------------------------------------------------------------------
    def _weighted_log_prob(self, x: Tensor) -> Tensor:
        """log pi_k + log N(x | mu_k, Sigma_k) for checked input x (n, *shape) -> (n, k)."""
        x = x.reshape(x.shape[0], self.data_dim)
        return torch.cat([log_p for _, log_p in self._log_joint(x)])

    def log_prob(self, x: Tensor, c: Tensor | int | None = None) -> Tensor:
        """Exact log density of each example in nats: (n, *data_shape) -> (n,); with
        ``n_classes``, ``log p(x | c)`` (``c``: a class, or one per example)."""
        if self.n_classes:
            return self._log_prob_per_class(x, c)
        self.check_condition(c)
        return torch.logsumexp(self._weighted_log_prob(self.check_input(x)), 1)

    def predict_proba(self, x: Tensor) -> Tensor:
        """Responsibilities p(component k | x): (n, *data_shape) -> (n, k) (with
        ``n_classes``: of the joint mixture's ``C x M`` components, class by class)."""
        if self.n_classes:
            return torch.softmax(self._joint_log_prob(x), 1)
        return torch.softmax(self._weighted_log_prob(self.check_input(x)), 1)

    responsibilities = predict_proba

    @torch.no_grad()
    def predict_class_proba(self, x: Tensor) -> Tensor:
        """``p(c | x)`` by Bayes' rule, ``p(x | c) p(c)`` normalised (a gmm with
        ``n_classes``): (n, *data_shape) -> (n, n_classes)."""
        return class_log_posterior(self, x).exp().to(self.dtype)

    @torch.no_grad()
    def predict_class(self, x: Tensor) -> Tensor:
        """The most probable class of each example by Bayes' rule: (n,) int64."""
        return class_log_posterior(self, x).argmax(1)

    @torch.no_grad()
    def components(self) -> tuple[Tensor, Tensor, Tensor]:
        """Weights (k,), means (k, d) and full covariances (k, d, d), whatever the
        ``covariance_type`` stores (``Mixture``); with ``n_classes``, the joint mixture's
        (weights ``p(c) pi_cm``, class by class)."""
        if self.n_classes:
            return self._components_per_class()
        cov, (k, d) = self.covariances_, self.means_.shape
        if self.covariance_type == "diag":
            cov = torch.diag_embed(cov)
        elif self.covariance_type == "tied":
            cov = cov.expand(k, d, d)
        elif self.covariance_type == "spherical":
            cov = cov[:, None, None] * torch.eye(d, dtype=cov.dtype, device=cov.device)
        return self.weights_, self.means_, cov

    def predict(self, x: Tensor) -> Tensor:
        """Most probable component of each example: (n, *data_shape) -> (n,) int64 (with
        ``n_classes``, among the joint mixture's components; ``predict_class`` gives the
        class)."""
        if self.n_classes:
            return self._joint_log_prob(x).argmax(1)
        return self._weighted_log_prob(self.check_input(x)).argmax(1)

    def loss(self, batch: Tensor, player: str = "model", c: Tensor | None = None) -> Tensor:
        """Mean negative log-likelihood of ``batch`` (for evaluation; fitting is EM)."""
        return -self.log_prob(batch, c=c).mean()

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, c: Tensor | int | None = None
    ) -> Tensor:
        """Draw n examples: component k ~ pi, then x ~ N(mu_k, Sigma_k) -> (n, *data_shape);
        with ``n_classes``, from the mixture of class ``c`` (one class, or one per sample).

        Reproducible given a seeded ``generator`` (the draws happen on its device).
        """
        if self.n_classes:
            return self._sample_per_class(n, generator, c)
        self.check_condition(c)
        if n == 0:  # as every model: an empty batch, not an error
            return torch.empty(0, *self.data_shape, device=self.device, dtype=self.dtype)
        where = generator.device if generator is not None else self.device
        weights = self.weights_.to(where, torch.float64)
        comp = torch.multinomial(weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.data_dim, generator=generator, device=where, dtype=self.dtype)
        comp, z = comp.to(self.device), z.to(self.device)
        scale = self.form.scale(self.covariances_, self.n_components)
        order = torch.argsort(comp, stable=True)
        counts = torch.bincount(comp, minlength=self.n_components).tolist()
        parts = [
            self.means_[k] + self.form.noise(zk, scale[k])
            for k, zk in enumerate(z[order].split(counts))
        ]
        out = torch.empty_like(z)
        out[order] = torch.cat(parts)
        return out.reshape(n, *self.data_shape)

    def sklearn_init(self) -> dict:
        """The current parameters as scikit-learn's weights_init / means_init / precisions_init.

        Right after ``initialize`` these are the initial parameters, so
        ``sklearn.mixture.GaussianMixture(**model.sklearn_init(), ...)`` starts EM from the
        same point. Arrays are float64 numpy arrays.
        """
        self._unconditional_only("sklearn_init")
        precisions = self.form.precisions(self.precisions_cholesky_.double())
        as_np = lambda t: t.detach().to("cpu", torch.float64).numpy()  # noqa: E731
        return {
            "weights_init": as_np(self.weights_) / as_np(self.weights_).sum(),
            "means_init": as_np(self.means_),
            "precisions_init": as_np(precisions),
        }


def _is_count(value) -> bool:
    """True for an integer >= 1 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _add(acc: tuple[Tensor, ...] | None, new: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Element-wise sum of two tuples of statistics (``acc`` may be None)."""
    return new if acc is None else tuple(a + b for a, b in zip(acc, new, strict=True))


def _forget_last_ll(module: GaussianMixture, incompatible_keys) -> None:
    """After loading a state, read the previous log-likelihood from the loaded buffer.

    States saved before online EM existed lack ``n_updates_``; it then stays 0.
    """
    module._last_ll = None
    missing = incompatible_keys.missing_keys
    missing[:] = [key for key in missing if not key.endswith("n_updates_")]
