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
whole training set; here they run over one mini-batch):

- **Means are batch statistics.** ``m_c``, ``m_{c,p}`` and the ``d_min`` are
  computed from the samples of the batch. As in the paper's gradients (eq. 5,
  9, 11) they are constants: E2 and E4 see detached means and radii. E5 would
  have no gradient at all with every mean constant; eq. 11 differentiates
  through ``m_{c,p}`` (the factor ``1 / N_{c,p}`` is d m_{c,p} / d f_i) and
  holds the neighbour mean ``m_{c,q}`` and the radius constant, and so does
  :func:`e5_state_continuity`.
- **Normalisation by the batch size N.** Every term is the paper's sum over
  the batch divided by N, the number of frames in the batch (E1 and E3 are
  then torch's mean cross-entropy). For E1-E4, whose sums run over samples,
  this makes the loss scale, and so the right learning rate, independent of
  the batch size. E5 sums over (class, state) pairs; it is divided by the
  same N so that the five terms keep the relative weights the paper's
  formula gives them on the batch (the sum E1 + ... + E5 divided by N).
- **Undefined pieces contribute 0.** A sample's E2 term needs another class
  in the batch (else there is no ``d_min^c``); its E4 term needs another state
  of its class. An E5 pair (c, p) needs ``m_{c,q}`` in the batch. Missing
  ones add 0 (they still count in N), so a batch of one class has E2 = 0.
  Batches of whole clips (all five state frames of each clip) and several
  classes avoid this.
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

import torch
import torch.nn.functional as F

from mepipe.featurestore.features import APEX_STATE, STATE_NAMES

from .kim2017 import KimOutput

__all__ = [
    "TERMS",
    "KimLossParams",
    "e1_class_error",
    "e2_intra_class",
    "e3_state_error",
    "e4_intra_state",
    "e5_state_continuity",
    "kim_objective",
    "parse_terms",
    "softplus_g",
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


def e2_intra_class(features: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    """E2 (eq. 4) / N: pull each feature into the sphere of radius ``d_min^c`` around its class mean.

    Parameters
    ----------
    features : Tensor, shape (N, D)
        F5 features.
    y : LongTensor, shape (N,)
        Expression classes.
    beta : float
        Sharpness of g.

    Returns
    -------
    Tensor, scalar
        ``1 / (2N) sum_i g(||f_i - m_c||^2 - (d_min^c)^2)``, means and radii
        detached; 0 when fewer than two classes are in the batch.
    """
    features, y = _check_features(features, y)
    means, group = _group_means(features.detach(), y)
    radius = _half_min_distance(means, torch.ones(len(means), len(means), dtype=torch.bool, device=y.device))
    valid = torch.isfinite(radius)[group]
    if not bool(valid.any()):
        return features.new_zeros(())
    omega = ((features - means[group]) ** 2).sum(1) - radius[group] ** 2
    return 0.5 * softplus_g(omega[valid], beta).sum() / features.shape[0]


def e4_intra_state(features: torch.Tensor, y: torch.Tensor, state: torch.Tensor, beta: float,
                   tau: float) -> torch.Tensor:
    """E4 (eq. 8) / N: pull each feature into the sphere of radius ``d_min^{c,p} / tau`` around its state mean.

    Parameters
    ----------
    features : Tensor, shape (N, D)
    y, state : LongTensor, shape (N,)
        Expression class and expression state of each sample.
    beta, tau : float

    Returns
    -------
    Tensor, scalar
        ``1 / (2N) sum_i g(||f_i - m_{c,p}||^2 - (d_min^{c,p} / tau)^2)``,
        means and radii detached; samples whose class has no other state in
        the batch contribute 0.
    """
    features, y = _check_features(features, y)
    state = _check_labels(state, features.shape[0], "state")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    means, group, group_class, _ = _state_groups(features.detach(), y, state)
    same_class = group_class[:, None] == group_class[None, :]
    radius = _half_min_distance(means, same_class)
    valid = torch.isfinite(radius)[group]
    if not bool(valid.any()):
        return features.new_zeros(())
    omega = ((features - means[group]) ** 2).sum(1) - (radius[group] / tau) ** 2
    return 0.5 * softplus_g(omega[valid], beta).sum() / features.shape[0]


def e5_state_continuity(features: torch.Tensor, y: torch.Tensor, state: torch.Tensor, beta: float, tau: float,
                        apex_state: int = 2) -> torch.Tensor:
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

    Returns
    -------
    Tensor, scalar
        ``1 / (2N)`` times the sum over pairs. As in eq. 11, ``m_{c,p}`` carries
        the gradient while ``m_{c,q}`` and ``d_min^{c,p}`` are constants, so a
        sample of (c, p) gets ``g'(e5) (m_{c,p} - m_{c,q}) / (N_{c,p} N)`` and
        apex samples get none. Pairs whose ``m_{c,q}`` is not in the batch
        contribute 0.
    """
    features, y = _check_features(features, y)
    state = _check_labels(state, features.shape[0], "state")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
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


def kim_objective(output: KimOutput, y: torch.Tensor, state: torch.Tensor,
                  params: KimLossParams = KimLossParams()) -> tuple[torch.Tensor, dict[str, float]]:
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
        "E2": lambda: e2_intra_class(output.features, y, params.beta),
        "E3": lambda: e3_state_error(output.state_logits, state),
        "E4": lambda: e4_intra_state(output.features, y, state, params.beta, params.tau),
        "E5": lambda: e5_state_continuity(output.features, y, state, params.beta, params.tau, params.apex_state),
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
