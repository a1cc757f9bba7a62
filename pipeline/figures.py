"""Pictures of stored features for ``mepipe show``: flow fields, LFMs, magnification, intensity, mask.

Each function takes a store and a clip id and returns a matplotlib Figure,
so the same pictures are available from Python and from the command line.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mepipe.featurestore import FeatureStore  # noqa: E402
from mepipe.featurestore.features import APEX_STATE, test_alpha_index  # noqa: E402
from mepipe.featurestore.views import field_frames, flow_to_rgb  # noqa: E402


def _grey(img: np.ndarray) -> np.ndarray:
    return img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img


def _row(store: FeatureStore, sample: str) -> dict:
    df = store.samples.set_index("sample")
    return df.loc[sample].to_dict()


def _arrows(ax, field: np.ndarray, step: int) -> None:
    u, v = field[0].astype(np.float32), field[1].astype(np.float32)
    ys, xs = np.mgrid[step // 2:u.shape[0]:step, step // 2:u.shape[1]:step]
    ax.quiver(xs, ys, u[ys, xs], v[ys, xs], color="yellow", angles="xy", scale_units="xy",
              scale=max(float(np.hypot(u, v).max()) / step, 1e-6) / 0.9, width=0.004)


def flow_figure(store: FeatureStore, sample: str, feature: str = "flow_onset_apex", index: int | None = None):
    """A flow field colour-coded (hue = angle, value = magnitude) and as arrows over the face."""
    flows = store.read(feature, sample).astype(np.float32)
    if feature == "flow_onset_apex_magnified":
        alpha = test_alpha_index(store.record.stage_params())
        start, end = store.read("onset_apex_pairs", sample)[0]
        field = flows[alpha, 0]
        title = f"{feature}, test alpha: frame {start} -> {end}"
    elif flows.ndim == 4:
        strongest = index is None
        index = int(np.argmax(np.abs(flows).sum(axis=(1, 2, 3)))) if strongest else index
        start, end = field_frames(feature, index)
        field = flows[index]
        title = f"{feature} field {index}: frame {start} -> {end}" + (" (strongest)" if strongest else "")
    else:
        field, title = flows, feature
    h, w = field.shape[1:]
    import cv2

    face = cv2.resize(_grey(store.read("crops", sample)[0]), (w, h), interpolation=cv2.INTER_AREA)
    mag = np.hypot(field[0], field[1])
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), constrained_layout=True)
    axes[0].imshow(flow_to_rgb(field))
    axes[0].set_title("colour-coded (hue = direction)")
    axes[1].imshow(face, cmap="gray")
    _arrows(axes[1], field, max(4, w // 20))
    axes[1].set_title("arrows over the first frame")
    im = axes[2].imshow(mag, cmap="magma")
    fig.colorbar(im, ax=axes[2], label="pixels")
    axes[2].set_title(f"magnitude (max {mag.max():.2f} px)")
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"{sample}: {title}")
    return fig


def lfm_figure(store: FeatureStore, sample: str):
    """LFM (68 points) and CLFM (the compact points) maps at three moments of the clip."""
    maps68, maps21 = store.read("lfm", sample), store.read("clfm", sample)
    picks = sorted({0, len(maps68) // 2, len(maps68) - 1})
    fig, axes = plt.subplots(2, len(picks), figsize=(3.3 * len(picks), 6.6), constrained_layout=True)
    axes = np.atleast_2d(axes)
    for col, k in enumerate(picks):
        for row, (maps, name) in enumerate(((maps68, "LFM"), (maps21, "CLFM"))):
            im = axes[row, col].imshow(maps[k], cmap="coolwarm", vmin=0, vmax=255)
            axes[row, col].set_title(f"{name}, map {k}")
            axes[row, col].axis("off")
    fig.colorbar(im, ax=axes, shrink=0.6, label="127 = no change")
    sfem = float(store.read("sfem", sample))
    fig.suptitle(f"{sample}: landmark feature maps (SFEM = {sfem:.3f})")
    return fig


def magnified_figure(store: FeatureStore, sample: str):
    """Original and magnified frames side by side at the apex, with their difference to frame 0."""
    import cv2

    mag = store.read("magnified", sample)
    crops = store.read("crops", sample)
    apex = int(store.read("state_index", sample)[APEX_STATE])
    size = mag.shape[2], mag.shape[1]
    original = np.stack([cv2.resize(_grey(c) if c.shape[-1] == 1 else c, size, interpolation=cv2.INTER_AREA)
                         for c in crops[[0, apex]]])
    magnified = _grey(mag[apex]) if mag.shape[-1] == 1 else mag[apex]
    alpha = store.attrs_of("magnified", sample).get("events", {}).get("test_alpha", "?")
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.8), constrained_layout=True)
    panels = [(original[1], "original apex", "gray"), (magnified, f"magnified apex (alpha {alpha})", "gray"),
              (np.abs(original[1].astype(float) - original[0]), "|apex - first|, original", "magma"),
              (np.abs(magnified.astype(float) - _grey(mag[0]) if mag.shape[-1] == 1 else magnified - mag[0]),
               "|apex - first|, magnified", "magma")]
    vmax = max(float(p[0].max()) for p in panels[2:])
    for ax, (img, title, cmap) in zip(axes, panels):
        ax.imshow(img, cmap=cmap, vmin=0 if cmap == "magma" else None, vmax=vmax if cmap == "magma" else None)
        ax.set_title(title)
        ax.axis("off")
    fig.suptitle(f"{sample}: Eulerian magnification")
    return fig


def intensity_figure(store: FeatureStore, sample: str):
    """Intensity and std-diff curves with ground-truth and estimated onset/apex/offset marked."""
    frames = store.read("frame", sample)
    row = _row(store, sample)
    fig, ax = plt.subplots(figsize=(8, 3.8), constrained_layout=True)
    ax.plot(frames, store.read("intensity", sample), label="intensity (NCC with apex)", color="C0")
    sd = store.read("stddiff", sample)
    ax.plot(frames, sd / max(sd.max(), 1e-9), label="std-diff (scaled)", color="C1")
    for key, style in (("onset", ":"), ("apex", "-"), ("offset", "--")):
        if not np.ma.is_masked(row.get(key)) and row.get(key) is not None and not _isna(row[key]):
            ax.axvline(row[key], color="k", ls=style, lw=1.2, label=f"{key} (sheet)")
        est = row.get(f"{key}_est")
        if est is not None and not _isna(est):
            ax.axvline(est, color="C3", ls=style, lw=1.2, label=f"{key} (estimated)")
    ax.set_xlabel("frame number")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax.set_title(f"{sample}: {row.get('emotion')}")
    return fig


def _isna(v) -> bool:
    try:
        return bool(np.isnan(float(v)))
    except (TypeError, ValueError):
        return v is None


def mask_figure(store: FeatureStore, sample: str):
    """The STRCN-A dataset mask over the clip's magnified (small size) face, beside its heat map."""
    mask = np.asarray(store.dataset_array("appearance_mask"))
    face = store.read("magnified_small", sample)[0, test_alpha_index(store.record.stage_params())]
    face = _grey(face) if face.shape[-1] == 1 else face.mean(-1)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), constrained_layout=True)
    axes[0].imshow(face, cmap="gray")
    axes[0].imshow(np.ma.masked_where(~mask, mask), cmap="autumn", alpha=0.45)
    axes[0].set_title(f"mask: {int(mask.sum())} of {mask.size} pixels kept")
    im = axes[1].imshow(store.read("heatmap", sample), cmap="magma")
    fig.colorbar(im, ax=axes[1])
    axes[1].set_title("heat map sum_t |I(t) - I(0)|")
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"{sample}: STRCN-A appearance mask")
    return fig


FIGURES = {
    "flow_onset_apex": lambda s, c: flow_figure(s, c, "flow_onset_apex"),
    "flow_onset_apex_magnified": lambda s, c: flow_figure(s, c, "flow_onset_apex_magnified"),
    "flow_first_each": lambda s, c: flow_figure(s, c, "flow_first_each"),
    "flow_consecutive": lambda s, c: flow_figure(s, c, "flow_consecutive"),
    "lfm": lfm_figure,
    "magnified": magnified_figure,
    "intensity": intensity_figure,
    "mask": mask_figure,
}
"""What ``mepipe show --feature`` can draw."""


def save(fig, path) -> None:
    fig.savefig(path, dpi=130)
    plt.close(fig)
