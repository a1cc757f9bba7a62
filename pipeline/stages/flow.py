"""TV-L1 optical flow between aligned face crops: the solver, its parameters and the pieces the flow stages share.

Each flow variant is a stage module of its own, with its parameter
dataclass (a :class:`FlowParams`) and kernel: onset→apex at 245×300 (W×H)
for STRCN-G (:mod:`.flow_onset_apex`), the same on the magnified clip for
every α and frame subset (:mod:`.flow_onset_apex_magnified`), first
frame→every later frame at 112×112 for SHCNN (:mod:`.flow_first_each`) and
consecutive frames at 64×64 for Nag's temporal network
(:mod:`.flow_consecutive`).

Where the flow is computed is the variant's ``compute_at``: ``"size"``
resizes the crops (``cv2.INTER_AREA``) to the variant's size and computes
the flow there; ``"crop"`` computes it on the aligned crops and resizes the
field to the variant's size, scaling u by the width ratio and v by the
height ratio. Either way the stored vectors are in pixels of the variant's
size. Kernels return float32; the store keeps float16 and casts on write.
The colour coding of Miao et al. (§III-C) is done when reading
(:func:`mepipe.featurestore.views.flow_to_rgb`), never stored.

Backends (``FlowParams.backend``): ``"opencv"`` runs OpenCV's DualTVL1 one
pair at a time; ``"torch"`` runs :mod:`.tvl1_torch`, the same algorithm on
all pairs of a call at once (several clips per call in a build), on the CUDA
device if there is one; ``"auto"`` is torch where the build has a CUDA device
and OpenCV otherwise. Only a build resolves ``"auto"`` (:func:`resolve_backend`,
applied before it computes cache keys), so the key, the stored parameters,
the task placement and the solver all name the backend that made each flow;
the solver refuses an unresolved ``"auto"``.

Sign convention (OpenCV's): ``flow[0]`` is u, the displacement along x
(positive = content moves right), ``flow[1]`` is v, along y (positive = content
moves down), such that ``next[y + v, x + u] ≈ prev[y, x]``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

VERSION = "1"
"""Bump when the output of any kernel here changes for the same input and parameters."""

_CHANNEL_ORDERS = {"BGR": cv2.COLOR_BGR2GRAY, "RGB": cv2.COLOR_RGB2GRAY}

BACKENDS = ("auto", "opencv", "torch")
"""Values of ``FlowParams.backend``."""
COMPUTE_AT = ("size", "crop")
"""Values of ``FlowParams.compute_at``: flow on crops resized to ``size``, or on the crops then resized."""


@dataclass(frozen=True)
class TVL1Params:
    """Parameters of ``cv2.optflow.DualTVL1OpticalFlow_create`` (OpenCV defaults).

    Attributes
    ----------
    tau : float
        Time step of the numerical scheme.
    lambda_ : float
        Weight of the data term (smaller = smoother flow).
    theta : float
        Coupling between the data and the smoothness term.
    nscales : int
        Number of pyramid scales.
    warps : int
        Number of warpings per scale.
    epsilon : float
        Stopping threshold on the update at each warp.
    inner_iterations, outer_iterations : int
        Iteration caps of the inner and outer loops (at most their product per warp).
    scale_step : float
        Down-scaling factor between pyramid scales, in (0, 1).
    gamma : float
        Weight of the illumination-change term (0 = off).
    median_filtering : int
        Median filter size applied to the flow between warps: 1 (off), 3 or 5
        (OpenCV's ``medianBlur`` of float fields allows no other size).
    use_initial_flow : bool
        Start from the flow passed in; must be False (mepipe always starts from
        zero flow, and OpenCV fails when asked to without one).

    References
    ----------
    .. [1] C. Zach, T. Pock, H. Bischof, "A duality based approach for realtime
       TV-L1 optical flow", DAGM 2007, LNCS 4713, pp. 214-223.
       https://doi.org/10.1007/978-3-540-74936-3_22
    .. [2] J. Sánchez Pérez, E. Meinhardt-Llopis, G. Facciolo, "TV-L1 optical
       flow estimation", Image Processing On Line 3 (2013), pp. 137-150.
       https://doi.org/10.5201/ipol.2013.26
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5
    use_initial_flow: bool = False

    def __post_init__(self):
        for name in ("tau", "lambda_", "theta", "epsilon"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TVL1Params.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("nscales", "warps", "inner_iterations", "outer_iterations"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"TVL1Params.{name} must be an int >= 1, got {value!r}")
        if not 0 < self.scale_step < 1:
            raise ValueError(f"TVL1Params.scale_step must be in (0, 1), got {self.scale_step!r}")
        if self.gamma < 0:
            raise ValueError(f"TVL1Params.gamma must be >= 0, got {self.gamma!r}")
        if self.median_filtering not in (1, 3, 5):
            raise ValueError(f"TVL1Params.median_filtering must be 1 (off), 3 or 5 (the sizes OpenCV's medianBlur "
                             f"allows on float flow fields), got {self.median_filtering!r}")
        if self.use_initial_flow:
            raise ValueError("TVL1Params.use_initial_flow must be False: flows start from zero")

    def create(self) -> cv2.optflow.DualTVL1OpticalFlow:
        """A new OpenCV DualTVL1 solver with these parameters."""
        return cv2.optflow.DualTVL1OpticalFlow_create(
            tau=self.tau, lambda_=self.lambda_, theta=self.theta, nscales=self.nscales,
            warps=self.warps, epsilon=self.epsilon, innnerIterations=self.inner_iterations,
            outerIterations=self.outer_iterations, scaleStep=self.scale_step, gamma=self.gamma,
            medianFiltering=self.median_filtering, useInitialFlow=self.use_initial_flow,
        )


@dataclass(frozen=True)
class FlowParams:
    """Parameters of one flow variant.

    Attributes
    ----------
    size : tuple of int
        (W, H) of the stored field.
    tvl1 : TVL1Params
        Solver parameters.
    channel_order : {"BGR", "RGB"}
        Channel order of colour crops, used for the conversion to grey
        (OpenCV decodes to BGR).
    backend : {"auto", "opencv", "torch"}
        Which TV-L1 implementation computes the flow (see the module docstring).
    compute_at : {"size", "crop"}
        ``"size"``: the crops are resized to ``size`` (``cv2.INTER_AREA``)
        and the flow is computed there. ``"crop"``: the flow is computed on
        the aligned crops and the field is resized to ``size`` with its
        vectors scaled to pixels of that size (about (S / W)^2 times the
        solver's work for S-pixel crops).
    """

    size: tuple[int, int] = (112, 112)
    tvl1: TVL1Params = field(default_factory=TVL1Params)
    channel_order: str = "RGB"
    backend: str = "auto"
    compute_at: str = "size"

    def __post_init__(self):
        size = tuple(self.size)
        if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s >= 8 for s in size):
            raise ValueError(f"{type(self).__name__}.size must be (W, H) ints >= 8, got {self.size!r}")
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if self.channel_order not in _CHANNEL_ORDERS:
            raise ValueError(f"{type(self).__name__}.channel_order must be one of "
                             f"{sorted(_CHANNEL_ORDERS)}, got {self.channel_order!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"{type(self).__name__}.backend must be one of {', '.join(BACKENDS)}, "
                             f"got {self.backend!r}")
        if self.compute_at not in COMPUTE_AT:
            raise ValueError(f"{type(self).__name__}.compute_at must be one of {', '.join(COMPUTE_AT)}, "
                             f"got {self.compute_at!r}")


def resolve_backend(backend: str, cuda: bool) -> str:
    """The concrete backend: ``"auto"`` is ``"torch"`` where ``cuda`` (a CUDA device is there), else ``"opencv"``."""
    if backend not in BACKENDS:
        raise ValueError(f"flow backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "torch" if cuda else "opencv"
    return backend


def _concrete(backend: str) -> str:
    """``backend``, refused unless it is a concrete backend (``"auto"`` is the build's to resolve)."""
    if backend not in BACKENDS or backend == "auto":
        raise ValueError(f"flow backend must be 'opencv' or 'torch' here, got {backend!r}; a build resolves "
                         "'auto' for its device (flow.resolve_backend) before any flow is computed")
    return backend


def cuda_available() -> bool:
    """True if PyTorch sees a CUDA device in this process."""
    import torch

    return torch.cuda.is_available()


def backend_record(backend: str) -> dict[str, str]:
    """What computes flows with ``backend`` in this process, for the store's records.

    Returns ``{"flow_backend", "flow_device", "flow_library"}``, e.g.
    ``{"flow_backend": "torch", "flow_device": "cuda:0 (NVIDIA H200)", "flow_library": "torch 2.13.0"}``.
    """
    if _concrete(backend) == "opencv":
        return {"flow_backend": "opencv", "flow_device": "cpu", "flow_library": f"opencv {cv2.__version__}"}
    import torch

    device = _torch_device()
    name = f"{device} ({torch.cuda.get_device_name(device)})" if device.startswith("cuda") else device
    return {"flow_backend": "torch", "flow_device": name, "flow_library": f"torch {torch.__version__}"}


def tvl1_flow(prev: np.ndarray, next: np.ndarray, tvl1: TVL1Params | None = None) -> np.ndarray:
    """Dense TV-L1 optical flow from ``prev`` to ``next`` (OpenCV).

    Parameters
    ----------
    prev, next : ndarray, shape (H, W)
        Greyscale images of the same shape: uint8 (0..255) or float (0..1,
        OpenCV's scale for float input).
    tvl1 : TVL1Params, optional
        Solver parameters; OpenCV's defaults when omitted.

    Returns
    -------
    ndarray, shape (2, H, W), float32
        (u, v): displacement along x and y, ``next[y + v, x + u] ≈ prev[y, x]``.

    References
    ----------
    .. [1] C. Zach, T. Pock, H. Bischof, DAGM 2007.
       https://doi.org/10.1007/978-3-540-74936-3_22
    """
    prev, next = _as_flow_input(prev, "prev"), _as_flow_input(next, "next")
    if prev.shape != next.shape:
        raise ValueError(f"prev and next must have the same shape, got {prev.shape} and {next.shape}")
    solver = (tvl1 or TVL1Params()).create()
    return _calc(solver, prev, next)


def tvl1_flows(prev: np.ndarray, next: np.ndarray, tvl1: TVL1Params | None = None,
               backend: str = "opencv") -> np.ndarray:
    """TV-L1 flow of N pairs of greyscale images with the given backend.

    Parameters
    ----------
    prev, next : ndarray, shape (N, H, W), uint8
        Pair i is ``prev[i] -> next[i]``.
    tvl1 : TVL1Params, optional
        Solver parameters; OpenCV's defaults when omitted.
    backend : {"opencv", "torch"}
        ``"opencv"``: one ``calc`` per pair; ``"torch"``: one batched call, on
        the CUDA device if there is one (else the CPU). ``"auto"`` is refused:
        a build resolves it (:func:`resolve_backend`).

    Returns
    -------
    ndarray, shape (N, 2, H, W), float32
    """
    tvl1 = tvl1 or TVL1Params()
    prev, next = np.asarray(prev), np.asarray(next)
    if prev.shape != next.shape or prev.ndim != 3:
        raise ValueError(f"prev and next must be stacks (N, H, W) of the same shape, got {prev.shape} and {next.shape}")
    if _concrete(backend) == "torch":
        from .tvl1_torch import tvl1_batch

        return tvl1_batch(prev, next, tvl1, device=_torch_device())
    solver = tvl1.create()
    out = np.empty((len(prev), 2, *prev.shape[1:]), np.float32)
    for i, (a, b) in enumerate(zip(prev, next)):
        out[i] = _calc(solver, a, b)
    return out


def first_each_pairs(n_frames: int) -> list[tuple[int, int]]:
    """(from, to) crop indices of the first->each flow: (0, 1), (0, 2), ..., (0, T-1)."""
    return [(0, t) for t in range(1, n_frames)]


def consecutive_pairs(n_frames: int) -> list[tuple[int, int]]:
    """(from, to) crop indices of the consecutive flow: (0, 1), (1, 2), ..., (T-2, T-1)."""
    return [(t - 1, t) for t in range(1, n_frames)]


def flows_of_clips(greys: Sequence[np.ndarray], pairs: Sequence[Sequence[tuple[int, int]]],
                   params: FlowParams) -> list[np.ndarray]:
    """The flows of given crop pairs of several clips, in one solver call.

    Parameters
    ----------
    greys : sequence of ndarray, shape (T_k, H, W), uint8
        Each clip's crops from :func:`prepare_crops` (at ``params.size``, or
        all at the crops' size when ``params.compute_at`` is ``"crop"``).
    pairs : sequence of sequence of (int, int)
        For each clip, the (from, to) crop indices of its flows.
    params : FlowParams

    Returns
    -------
    list of ndarray, shape (len(pairs[k]), 2, H, W), float32
    """
    if len(greys) != len(pairs):
        raise ValueError(f"need one pair list per clip, got {len(greys)} clips and {len(pairs)} pair lists")
    prev = [g[[a for a, _ in p]] for g, p in zip(greys, pairs) if len(p)]
    nxt = [g[[b for _, b in p]] for g, p in zip(greys, pairs) if len(p)]
    if not prev:
        w, h = params.size
        return [np.zeros((0, 2, h, w), np.float32) for _ in pairs]
    flows = tvl1_flows(np.concatenate(prev), np.concatenate(nxt), params.tvl1, params.backend)
    return [_to_size(f, params) for f in np.split(flows, np.cumsum([len(p) for p in pairs])[:-1])]


def clip_flows(crops: np.ndarray, params: FlowParams,
               pairs_of: Callable[[int], list[tuple[int, int]]]) -> np.ndarray:
    """The (P, 2, H, W) float32 flows of one clip's crop pairs ``pairs_of(T)`` (e.g. :func:`first_each_pairs`)."""
    grey = prepare_crops(crops, params, min_frames=2)
    return flows_of_clips([grey], [pairs_of(len(grey))], params)[0]


def prepare_crops(crops: np.ndarray, params: FlowParams, min_frames: int = 1) -> np.ndarray:
    """A clip's crops as the flow sees them: grey, resized to ``params.size`` (INTER_AREA) unless
    ``params.compute_at`` is ``"crop"``.

    Parameters
    ----------
    crops : ndarray, shape (T, S, S) or (T, S, S, C), uint8
    params : FlowParams
    min_frames : int
        Fewest crops accepted.

    Returns
    -------
    ndarray, shape (T, H, W), uint8
    """
    return _prepare(_check_crops(crops, min_frames=min_frames), params)


def onset_apex_crops(crops: np.ndarray, onset: int, apex: int, params: FlowParams) -> np.ndarray:
    """The onset and apex crops, checked and prepared: (2, H, W) uint8."""
    t = len(_check_crops(crops))
    for name, index in (("onset", onset), ("apex", apex)):
        if not 0 <= index < t:
            raise ValueError(f"{name} index {index} is outside the clip's {t} crops (0..{t - 1})")
    if not onset < apex:
        raise ValueError(f"onset index must precede the apex index, got onset={onset}, apex={apex}")
    return _prepare(crops[[onset, apex]], params)


def _calc(solver: cv2.optflow.DualTVL1OpticalFlow, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
    flow = solver.calc(prev, next, None)
    return np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32)


def _torch_device() -> str:
    return "cuda" if cuda_available() else "cpu"


def _as_flow_input(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"{name} must be a 2-D greyscale image (H, W), got shape {image.shape}")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if np.issubdtype(image.dtype, np.floating):
        return np.ascontiguousarray(image, dtype=np.float32)
    raise ValueError(f"{name} must be uint8 or float (0..1), got dtype {image.dtype}")


def _check_crops(crops: np.ndarray, min_frames: int = 1) -> np.ndarray:
    crops = np.asarray(crops)
    if crops.ndim not in (3, 4) or (crops.ndim == 4 and crops.shape[-1] not in (1, 3)):
        raise ValueError(f"crops must have shape (T, S, S) or (T, S, S, C) with C in (1, 3), got {crops.shape}")
    if crops.dtype != np.uint8:
        raise ValueError(f"crops must be uint8, got dtype {crops.dtype}")
    if len(crops) < min_frames:
        raise ValueError(f"need at least {min_frames} crops, got {len(crops)}")
    return crops


def resize_field(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Flow fields (..., 2, H, W) resized to ``size`` = (W', H'), vectors in pixels of the new grid.

    Each component is area-resampled (``cv2.INTER_AREA``), then u is scaled
    by W' / W and v by H' / H: a displacement of d pixels on the old grid is
    d W' / W pixels on the new one.
    """
    flow = np.asarray(flow, dtype=np.float32)
    h, w = flow.shape[-2:]
    width, height = size
    if (w, h) == (width, height):
        return flow
    planes = flow.reshape(-1, h, w)
    out = np.stack([cv2.resize(p, (width, height), interpolation=cv2.INTER_AREA) for p in planes])
    out = out.reshape(flow.shape[:-2] + (height, width))
    out[..., 0, :, :] *= width / w
    out[..., 1, :, :] *= height / h
    return out


def _to_size(flow: np.ndarray, params: FlowParams) -> np.ndarray:
    """Kernel output at ``params.size``: a field computed on the crops is resized there."""
    return resize_field(flow, params.size) if params.compute_at == "crop" else flow


def _prepare(crops: np.ndarray, params: FlowParams) -> np.ndarray:
    """Greyscale crops where the flow is computed: (T, H, W) uint8 at ``params.size`` or at the crops' size."""
    crops = _check_crops(crops)
    if crops.ndim == 4 and crops.shape[-1] == 3:
        code = _CHANNEL_ORDERS[params.channel_order]
        crops = np.stack([cv2.cvtColor(c, code) for c in crops])
    elif crops.ndim == 4:
        crops = crops[..., 0]
    if params.compute_at == "crop":
        return np.ascontiguousarray(crops)
    return np.stack([cv2.resize(c, params.size, interpolation=cv2.INTER_AREA) for c in crops])
