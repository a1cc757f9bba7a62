"""The five objective terms of Kim et al. (2017), eq. 2-11, on one mini-batch.

The CNN of :mod:`mepipe.train.models.kim2017` is trained on expression-state
frames with labels y (expression class c) and state p (0 onset, 1
onset->apex, 2 apex, 3 apex->offset, 4 offset). With F5 features f, the
softened hinge ``g(w) = log(1 + exp(beta w)) / beta`` (:func:`softplus_g`) and

- ``m_c``: mean feature of class c; ``d_min^c``: half the smallest distance
  from ``m_c`` to another class's mean;
- ``m_{c,p}``: mean feature of class c in state p; ``d_min^{c,p}``: half the
  smallest distance from ``m_{c,p}`` to ``m_{c,j}``, j != p (same class);

the terms are

- E1 (eq. 2): cross-entropy of the class head Fc;
- E2 (eq. 4): ``1/2 sum_i g(||f_i - m_c||^2 - (d_min^c)^2)``;
- E3 (eq. 6): cross-entropy of the state head Fp;
- E4 (eq. 8): ``1/2 sum_i g(||f_i - m_{c,p}||^2 - (d_min^{c,p} / tau)^2)``;
- E5 (eq. 10): ``1/2 sum_c sum_{p != apex} g(||m_{c,q} - m_{c,p}||^2 - (2 d_min^{c,p} / tau)^2)``
  with q the neighbouring state towards the apex (p + 1 before it, p - 1 after it).

Conventions of this implementation (the paper writes its sums over the
whole training set; training steps see one mini-batch):

- **Means are training-set statistics** (:class:`KimMeans`, the default):
  ``m_c``, ``m_{c,p}`` and the ``d_min`` are computed from the F5 features of
  every training state frame (:func:`training_set_means`), refreshed before
  each epoch and held constant during it. As in the paper's gradients (eq.
  5, 9, 11) they are constants for E2 and E4. For E5, eq. 11 gives a sample
  of (c, p) the gradient ``g'(e5) (m_{c,p} - m_{c,q}) / N_{c,p}`` with
  ``N_{c,p}`` the samples of (c, p) in the (augmented) training set: summed
  over an epoch that is E5's full gradient once, while E1-E4 are summed over
  every sample. ``N_{c,p}`` therefore counts the samples an epoch actually
  draws (the variants per clip of ``--recipe-option variants``, not always
  the grid's 150). :func:`e5_state_continuity` gives each sample of the batch
  that gradient and the value ``g(e5) / (2 N_{c,p})`` (which add up to E5
  over the training set). ``means=None`` computes them from the batch
  instead (``--recipe-option means=batch``, the behaviour before issue 14):
  E5 then differentiates through the batch's ``m_{c,p}``.
- **Normalisation by the batch size N.** Every term is the paper's sum over
  the batch divided by N, the number of frames in the batch (E1 and E3 are
  then torch's mean cross-entropy). For E1-E4, whose sums run over samples,
  this makes the loss scale, and so the right learning rate, independent of
  the batch size. E5's per-sample shares are divided by the same N.
- **Undefined pieces contribute 0.** A sample's E2 term needs another class
  (else there is no ``d_min^c``); its E4 term needs another state of its
  class. An E5 pair (c, p) needs ``m_{c,q}``. Missing ones add 0 (they still
  count in N), so with batch means a batch of one class has E2 = 0.
- Feature terms are computed in float32 (squared distances of 512-d
  features can overflow float16 under autocast).

The paper does not state beta or tau; see :class:`KimLossParams` for the values
chosen.

References
----------
.. [1] D. H. Kim, W. J. Baddar, J. Jang, Y. M. Ro, "Multi-objective based
   spatio-temporal feature representation learning robust to expression
   intensity variations for facial expression recognition", IEEE Trans.
   Affective Computing, 2017. https://doi.org/10.1109/TAFFC.2017.2699999
.. [2] A. Mignon, F. Jurie, "PCCA: a new approach for distance learning from
   sparse pairwise constraints", CVPR 2012, pp. 2666-2672 (the function g;
   reference [46] of [1]).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from mepipe.featurestore.features import APEX_STATE, STATE_NAMES

if TYPE_CHECKING:
    from .kim2017 import KimOutput

__all__ = [
    "TERMS",
    "KimLossParams",
    "KimMeans",
    "e1_class_error",
    "e2_intra_class",
    "e3_state_error",
    "e4_intra_state",
    "e5_state_continuity",
    "kim_objective",
    "parse_terms",
    "softplus_g",
    "training_set_means",
]

TERMS: tuple[str, ...] = ("E1", "E2", "E3", "E4", "E5")
"""Names of the objective terms, in the paper's order."""


@dataclass(frozen=True)
class KimLossParams:
    """Settings of the Kim et al. objective.

    Attributes
    ----------
    beta : float
        Sharpness of g (eq. 4). Not stated in the paper; 1.0 chosen (plain
        softplus: g(0) = log 2, g' = sigmoid), which for F5 features of unit
        order is a smooth hinge on squared distances.
    tau : float
        Range of the state clusters (eq. 8, 10). Not stated in the paper; 1.0
        chosen: the state spheres of E4 then have radius ``d_min^{c,p}``, half
        the distance to the nearest other state of the class, so they do not
        overlap (the same construction as E2's class spheres), and E5's hinge
        is at ``||m_{c,q} - m_{c,p}|| = 2 d_min^{c,p}``, i.e. E5 is near zero
        exactly when the neighbouring state q is the nearest state of p.
    apex_state : int
        Index of the apex state (2 in the store's state order).
    n_states : int
        Number of expression states (5).
    terms : tuple of str
        Enabled terms, a subset of ("E1", ..., "E5") that includes E1 (see
        :func:`parse_terms`; a string such as "E1,E2" is parsed by it); stored
        in the paper's order.
    """

    beta: float = 1.0
    tau: float = 1.0
    apex_state: int = APEX_STATE
    n_states: int = len(STATE_NAMES)
    terms: tuple[str, ...] = TERMS

    def __post_init__(self) -> None:
        if not self.beta > 0 or not self.tau > 0:
            raise ValueError(f"beta and tau must be > 0, got beta={self.beta!r}, tau={self.tau!r}")
        if self.n_states < 2 or not 0 <= self.apex_state < self.n_states:
            raise ValueError(f"need n_states >= 2 and 0 <= apex_state < n_states, got n_states={self.n_states}, "
                             f"apex_state={self.apex_state}")
        terms = parse_terms(self.terms) if isinstance(self.terms, str) else _check_terms(tuple(self.terms))
        object.__setattr__(self, "terms", terms)


@dataclass(frozen=True)
class KimMeans:
    """Class and state means of the training set's F5 features, with their radii (eq. 4, 8, 10, 11).

    Attributes
    ----------
    class_means : Tensor, shape (C, D)
        ``m_c``; NaN rows for classes without training samples.
    class_radius : Tensor, shape (C,)
        ``d_min^c``, half the distance to the nearest other class mean; inf
        when there is no other class.
    state_means : Tensor, shape (C, P, D)
        ``m_{c,p}``; NaN where class c has no sample in state p.
    state_radius : Tensor, shape (C, P)
        ``d_min^{c,p}``, half the distance to the nearest other state mean of
        class c; inf when c has no other state.
    state_counts : Tensor, shape (C, P)
        ``N_{c,p}`` of eq. 11: samples of (c, p) one epoch trains on (each
        frame times the variants drawn of it).
    """

    class_means: torch.Tensor
    class_radius: torch.Tensor
    state_means: torch.Tensor
    state_radius: torch.Tensor
    state_counts: torch.Tensor

    def to(self, device: torch.device | str) -> KimMeans:
        return KimMeans(*(t.to(device) for t in (self.class_means, self.class_radius, self.state_means,
                                                  self.state_radius, self.state_counts)))


def training_set_means(features: torch.Tensor, y: torch.Tensor, state: torch.Tensor, n_classes: int,
                       n_states: int, copies: int = 1) -> KimMeans:
    """:class:`KimMeans` of the F5 features of a training set (every state frame of every training clip).

    Parameters
    ----------
    features : Tensor, shape (N, D)
    y, state : LongTensor, shape (N,)
        Class and expression state of each frame.
    n_classes, n_states : int
    copies : int
        How often one epoch trains on each frame, which ``N_{c,p}`` counts so
        that E5's per-sample shares add up to E5 once per epoch: the grid
        variants drawn per clip (Kim's 150, or N under ``variants=N``), 1
        without augmentation or with one random variant per frame.
    """
    features, y = _check_features(features, y)
    state = _check_labels(state, features.shape[0], "state").to(y.device)
    if int(y.max()) >= n_classes or int(state.max()) >= n_states or copies < 1:
        raise ValueError(f"classes must lie in 0..{n_classes - 1} and states in 0..{n_states - 1} (copies >= 1), "
                         f"got {sorted(set(y.tolist()))}, {sorted(set(state.tolist()))}, copies={copies}")
    features = features.detach().double()
    dim = features.shape[1]
    counts = torch.zeros(n_classes, dtype=torch.float64, device=y.device).index_add_(
        0, y, torch.ones_like(y, dtype=torch.float64))
    sums = features.new_zeros(n_classes, dim).index_add_(0, y, features)
    class_means = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], float("nan"))
    class_radius = _half_min_distance(class_means.nan_to_num(), (counts > 0)[:, None] & (counts > 0)[None, :])
    key = y * n_states + state
    state_counts = torch.zeros(n_classes * n_states, dtype=torch.float64, device=y.device).index_add_(
        0, key, torch.ones_like(key, dtype=torch.float64))
    state_sums = features.new_zeros(n_classes * n_states, dim).index_add_(0, key, features)
    state_means = torch.where(state_counts[:, None] > 0, state_sums / state_counts.clamp(min=1)[:, None],
                              float("nan"))
    present = state_counts > 0
    group_class = torch.arange(n_classes * n_states, device=y.device) // n_states
    allowed = present[:, None] & present[None, :] & (group_class[:, None] == group_class[None, :])
    state_radius = _half_min_distance(state_means.nan_to_num(), allowed)
    return KimMeans(class_means.float(), class_radius.float(), state_means.view(n_classes, n_states, dim).float(),
                    state_radius.view(n_classes, n_states).float(),
                    (state_counts * copies).view(n_classes, n_states).float())


def parse_terms(text: str) -> tuple[str, ...]:
    """Objective terms from a command-line string such as ``"E1,E2,E3"``.

    Names are case-insensitive and separated by commas (spaces allowed);
    ``"all"`` means all five. E1 is required: every configuration of the
    paper's Table 6 contains it, and without a classification term the
    feature terms E2, E4, E5 are minimised by collapsing all features onto one
    point.

    Parameters
    ----------
    text : str

    Returns
    -------
    tuple of str
        Canonical names in the paper's order, e.g. ``("E1", "E2", "E3")``.

    Raises
    ------
    ValueError
        On an unknown or repeated name (the message names it), an empty list,
        or a list without E1.
    """
    if text.strip().lower() == "all":
        return TERMS
    names = tuple(part.strip().upper() for part in text.split(","))
    if any(not name for name in names):
        raise ValueError(f"empty term in {text!r}; give comma-separated terms such as 'E1,E2,E3' or 'all'")
    return _check_terms(names)


def _check_terms(names: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [name for name in names if name not in TERMS]
    if unknown:
        raise ValueError(f"unknown objective term(s) {', '.join(map(repr, unknown))}; "
                         f"valid terms: {', '.join(TERMS)} (or 'all')")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"objective term(s) {', '.join(map(repr, repeated))} given more than once in {names!r}")
    if "E1" not in names:
        raise ValueError(f"the terms {names!r} lack 'E1'; the class error E1 is part of every configuration "
                         f"(Kim Table 6), e.g. use 'E1,{','.join(names)}'")
    return tuple(name for name in TERMS if name in names)


def softplus_g(omega: torch.Tensor, beta: float) -> torch.Tensor:
    """``g(omega) = log(1 + exp(beta * omega)) / beta`` (eq. 4), a smooth ``max(0, omega)``.

    Computed as ``logaddexp(beta w, 0) / beta``, exact and free of overflow for
    any omega; its derivative is ``sigmoid(beta * omega)`` (also at 0, where a
    ``max(z, 0) + log1p(exp(-|z|))`` form would give 1 instead of 1/2).

    Parameters
    ----------
    omega : Tensor, any shape
    beta : float
        Sharpness, > 0.

    Returns
    -------
    Tensor, same shape as ``omega``
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    return torch.logaddexp(omega * beta, torch.zeros((), dtype=omega.dtype, device=omega.device)) / beta


def e1_class_error(class_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """E1 (eq. 2) / N: mean cross-entropy of the class logits Fc (N, C) against classes y (N,)."""
    return F.cross_entropy(class_logits.float(), y.long())


def e3_state_error(state_logits: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """E3 (eq. 6) / N: mean cross-entropy of the state logits Fp (N, n_states) against states (N,)."""
    return F.cross_entropy(state_logits.float(), state.long())


def e2_intra_class(features: torch.Tensor, y: torch.Tensor, beta: float,
                   means: KimMeans | None = None) -> torch.Tensor:
    """E2 (eq. 4) / N: pull each feature into the sphere of radius ``d_min^c`` around its class mean.

    Parameters
    ----------
    features : Tensor, shape (N, D)
        F5 features.
    y : LongTensor, shape (N,)
        Expression classes.
    beta : float
        Sharpness of g.
    means : KimMeans, optional
        The training set's means and radii; None takes them from the batch.

    Returns
    -------
    Tensor, scalar
        ``1 / (2N) sum_i g(||f_i - m_c||^2 - (d_min^c)^2)``, means and radii
        constant; 0 when there is no other class (in the training set, or
        in the batch).
    """
    features, y = _check_features(features, y)
    if means is not None:
        centre, radius = means.class_means[y], means.class_radius[y]
        valid = torch.isfinite(radius) & torch.isfinite(centre).all(1)
        if not bool(valid.any()):
            return features.new_zeros(())
        omega = ((features[valid] - centre[valid]) ** 2).sum(1) - radius[valid] ** 2
        return 0.5 * softplus_g(omega, beta).sum() / features.shape[0]
    means, group = _group_means(features.detach(), y)
    radius = _half_min_distance(means, torch.ones(len(means), len(means), dtype=torch.bool, device=y.device))
    valid = torch.isfinite(radius)[group]
    if not bool(valid.any()):
        return features.new_zeros(())
    omega = ((features - means[group]) ** 2).sum(1) - radius[group] ** 2
    return 0.5 * softplus_g(omega[valid], beta).sum() / features.shape[0]


def e4_intra_state(features: torch.Tensor, y: torch.Tensor, state: torch.Tensor, beta: float,
                   tau: float, means: KimMeans | None = None) -> torch.Tensor:
    """E4 (eq. 8) / N: pull each feature into the sphere of radius ``d_min^{c,p} / tau`` around its state mean.

    Parameters
    ----------
    features : Tensor, shape (N, D)
    y, state : LongTensor, shape (N,)
        Expression class and expression state of each sample.
    beta, tau : float
    means : KimMeans, optional
        The training set's means and radii; None takes them from the batch.

    Returns
    -------
    Tensor, scalar
        ``1 / (2N) sum_i g(||f_i - m_{c,p}||^2 - (d_min^{c,p} / tau)^2)``,
        means and radii constant; samples whose class has no other state (in
        the training set, or in the batch) contribute 0.
    """
    features, y = _check_features(features, y)
    state = _check_labels(state, features.shape[0], "state").to(y.device)
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    if means is not None:
        centre, radius = means.state_means[y, state], means.state_radius[y, state]
        valid = torch.isfinite(radius) & torch.isfinite(centre).all(1)
        if not bool(valid.any()):
            return features.new_zeros(())
        omega = ((features[valid] - centre[valid]) ** 2).sum(1) - (radius[valid] / tau) ** 2
        return 0.5 * softplus_g(omega, beta).sum() / features.shape[0]
    means, group, group_class, _ = _state_groups(features.detach(), y, state)
    same_class = group_class[:, None] == group_class[None, :]
    radius = _half_min_distance(means, same_class)
    valid = torch.isfinite(radius)[group]
    if not bool(valid.any()):
        return features.new_zeros(())
    omega = ((features - means[group]) ** 2).sum(1) - (radius[group] / tau) ** 2
    return 0.5 * softplus_g(omega[valid], beta).sum() / features.shape[0]


def e5_state_continuity(features: torch.Tensor, y: torch.Tensor, state: torch.Tensor, beta: float, tau: float,
                        apex_state: int = 2, means: KimMeans | None = None) -> torch.Tensor:
    """E5 (eq. 10) / N: keep each state mean near its neighbour towards the apex.

    For every class c and non-apex state p present in the batch, q = p + 1 if
    p < apex_state else p - 1, and the pair adds
    ``g(||m_{c,q} - m_{c,p}||^2 - (2 d_min^{c,p} / tau)^2)``.

    Parameters
    ----------
    features : Tensor, shape (N, D)
    y, state : LongTensor, shape (N,)
    beta, tau : float
    apex_state : int
        Index of the apex state.
    means : KimMeans, optional
        The training set's means, radii and ``N_{c,p}``; None takes means and
        counts from the batch.

    Returns
    -------
    Tensor, scalar
        With batch means: ``1 / (2N)`` times the sum over the batch's pairs;
        ``m_{c,p}`` carries the gradient while ``m_{c,q}`` and ``d_min^{c,p}``
        are constants (eq. 11), so a sample of (c, p) gets
        ``g'(e5) (m_{c,p} - m_{c,q}) / (N_{c,p} N)`` with the batch's
        ``N_{c,p}``. With training-set means: each non-apex sample of (c, p)
        adds ``g(e5) / (2 N_{c,p})`` and gets the gradient
        ``g'(e5) (m_{c,p} - m_{c,q}) / N_{c,p}``, both divided by N, with the
        training set's means and ``N_{c,p}``. Apex samples get nothing, and
        pairs without ``m_{c,q}`` contribute 0.
    """
    features, y = _check_features(features, y)
    state = _check_labels(state, features.shape[0], "state").to(y.device)
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    if means is not None:
        return _e5_training_set(features, y, state, beta, tau, apex_state, means)
    means, _, group_class, group_state = _state_groups(features, y, state)
    fixed = means.detach()
    same_class = group_class[:, None] == group_class[None, :]
    radius = _half_min_distance(fixed, same_class)
    toward_apex = torch.where(group_state < apex_state, group_state + 1, group_state - 1)
    is_neighbour = same_class & (group_state[None, :] == toward_apex[:, None])
    valid = is_neighbour.any(1) & (group_state != apex_state)
    if not bool(valid.any()):
        return features.new_zeros(())
    neighbour = fixed[is_neighbour.to(torch.int64).argmax(1)]
    omega = ((neighbour - means) ** 2).sum(1) - (2 * radius / tau) ** 2
    return 0.5 * softplus_g(omega[valid], beta).sum() / features.shape[0]


def _e5_training_set(features: torch.Tensor, y: torch.Tensor, state: torch.Tensor, beta: float, tau: float,
                     apex_state: int, means: KimMeans) -> torch.Tensor:
    """E5's share of one batch with the training set's means (see :func:`e5_state_continuity`)."""
    n_states = means.state_means.shape[1]
    neighbour = torch.where(state < apex_state, state + 1, state - 1).clamp(0, n_states - 1)
    m_p, m_q = means.state_means[y, state], means.state_means[y, neighbour]
    radius, count = means.state_radius[y, state], means.state_counts[y, state]
    valid = ((state != apex_state) & torch.isfinite(radius) & torch.isfinite(m_p).all(1)
             & torch.isfinite(m_q).all(1) & (count > 0))
    if not bool(valid.any()):
        return features.new_zeros(())
    m_p, m_q, radius, count = m_p[valid], m_q[valid], radius[valid], count[valid]
    omega = ((m_q - m_p) ** 2).sum(1) - (2 * radius / tau) ** 2
    slope = torch.sigmoid(beta * omega)  # g'(omega)
    live = features[valid] - features[valid].detach()  # zero, with the gradient of f_i
    share = 0.5 * softplus_g(omega, beta) / count + (slope[:, None] * (m_p - m_q) * live).sum(1) / count
    return share.sum() / features.shape[0]


def kim_objective(output: KimOutput, y: torch.Tensor, state: torch.Tensor,
                  params: KimLossParams = KimLossParams(),
                  means: KimMeans | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Stage-1 objective of Kim et al.: the sum of the enabled terms E1..E5 on one batch.

    Parameters
    ----------
    output : KimOutput
        CNN outputs for N state frames: features (N, D), class logits (N, C),
        state logits (N, n_states).
    y : LongTensor, shape (N,)
        Expression class of each frame, in 0..C-1.
    state : LongTensor, shape (N,)
        Expression state of each frame, in 0..n_states-1.
    params : KimLossParams
    means : KimMeans, optional
        The training set's means (E2, E4, E5); None takes them from the batch.

    Returns
    -------
    total : Tensor, scalar
        Sum of the enabled terms (each already divided by N), to back-propagate.
    values : dict of str to float
        Value of each enabled term, keyed "E1".."E5", for logging.
    """
    n_batch = output.features.shape[0]
    if n_batch == 0:
        raise ValueError("kim_objective needs a non-empty batch")
    y = _check_labels(y, n_batch, "y")
    state = _check_labels(state, n_batch, "state")
    n_classes = output.class_logits.shape[-1]
    if output.class_logits.shape != (n_batch, n_classes) or output.state_logits.shape != (n_batch, params.n_states):
        raise ValueError(
            f"expected class logits (N, C) and state logits (N, {params.n_states}) for N = {n_batch}, got "
            f"{tuple(output.class_logits.shape)} and {tuple(output.state_logits.shape)}"
        )
    if int(y.max()) >= n_classes:
        raise ValueError(f"class labels must lie in 0..{n_classes - 1}, got {sorted(set(y.tolist()))}")
    if int(state.max()) >= params.n_states:
        raise ValueError(f"state labels must lie in 0..{params.n_states - 1}, got {sorted(set(state.tolist()))}")
    compute = {
        "E1": lambda: e1_class_error(output.class_logits, y),
        "E2": lambda: e2_intra_class(output.features, y, params.beta, means),
        "E3": lambda: e3_state_error(output.state_logits, state),
        "E4": lambda: e4_intra_state(output.features, y, state, params.beta, params.tau, means),
        "E5": lambda: e5_state_continuity(output.features, y, state, params.beta, params.tau, params.apex_state,
                                          means),
    }
    terms = {name: compute[name]() for name in params.terms}
    total = torch.stack(list(terms.values())).sum()
    return total, {name: float(value.detach()) for name, value in terms.items()}


# --- helpers ---------------------------------------------------------------------------------


def _check_labels(labels: torch.Tensor, n: int, name: str) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.shape != (n,) or labels.is_floating_point():
        raise ValueError(f"{name} must be integer labels of shape ({n},), got {labels.dtype} {tuple(labels.shape)}")
    if n and int(labels.min()) < 0:
        raise ValueError(f"{name} labels must be >= 0, got {sorted(set(labels.tolist()))}")
    return labels.long()


def _check_features(features: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"features must have shape (N, D) with N >= 1, got {tuple(features.shape)}")
    return features.float(), _check_labels(y, features.shape[0], "y").to(features.device)


def _group_means(features: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean feature (K, D) of each distinct key value and each sample's group index (N,)."""
    _, group, counts = torch.unique(key, return_inverse=True, return_counts=True)
    sums = features.new_zeros(len(counts), features.shape[1]).index_add(0, group, features)
    return sums / counts[:, None].to(features.dtype), group


def _state_groups(features: torch.Tensor, y: torch.Tensor, state: torch.Tensor):
    """Means of the (class, state) groups present: means (K, D), group (N,), class (K,), state (K,)."""
    state = state.to(y.device)
    n_states = int(state.max()) + 1
    key = y * n_states + state
    means, group = _group_means(features, key)
    first = torch.zeros(len(means), dtype=torch.long, device=y.device).scatter_(
        0, group, torch.arange(len(group), device=y.device))  # any sample of each group
    return means, group, y[first], state[first]


def _half_min_distance(means: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Half the distance from each mean to the nearest other mean j with ``allowed[k, j]``; inf if none."""
    dist = ((means[:, None, :] - means[None, :, :]) ** 2).sum(-1).sqrt()
    allowed = allowed & ~torch.eye(len(means), dtype=torch.bool, device=means.device)
    return 0.5 * dist.masked_fill(~allowed, float("inf")).amin(1)
