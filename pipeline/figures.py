"""Pictures of stored features for ``mepipe show``: flow fields, LFMs, magnification, intensity, mask.

Each ``*_figure`` function takes a store and a clip id and returns a
matplotlib Figure, so the same pictures are available from Python and from
the command line; each stage declares its picture (``figure=`` of
:func:`~mepipe.pipeline.stages.registry.register_stage`). Matplotlib is
imported when a picture is drawn, not when a stage module is.
"""
from __future__ import annotations

import difflib

import numpy as np

from mepipe.featurestore import FeatureStore, features
from mepipe.featurestore.errors import UnknownNameError
from mepipe.featurestore.features import APEX_STATE, FeatureDef, test_alpha_index
from mepipe.featurestore.views import field_frames, flow_to_rgb


def require(store: FeatureStore, sample: str, *needed: FeatureDef) -> None:
    """Refuse in one sentence a clip the store does not hold (naming close matches) or a feature it lacks.

    Raises
    ------
    UnknownNameError
        The clip is not in the store, or one of ``needed`` (per clip, or a
        dataset-level feature) is not stored for it; the message says how
        to get it.
    """
    known = store.sample_ids
    if sample not in known:
        close = difflib.get_close_matches(sample, known, n=3, cutoff=0.6)
        hint = f"close matches: {', '.join(close)}" if close else f"its clips include {', '.join(known[:3])}"
        raise UnknownNameError(f"{store.path} has no clip {sample!r}; {hint} (`mepipe info {store.path}` lists them)")
    missing = [f.name for f in needed if (f.name not in store.features if f.scope == "dataset"
                                          else not store.has(f.name, sample))]
    if missing:
        row = store.samples.set_index("sample").loc[sample]
        why = f"the clip failed: {row['error']}" if row.get("status") == "failed" else \
            f"build with --features {','.join(missing)}"
        raise UnknownNameError(f"{store.path}: clip {sample!r} has no {', '.join(missing)} ({why})")


def _pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grey(img: np.ndarray) -> np.ndarray:
    return img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img


def _row(store: FeatureStore, sample: str) -> dict:
    df = store.samples.set_index("sample")
    return df.loc[sample].to_dict()


def _arrows(ax, field: np.ndarray, step: int) -> float:
    """Quiver every ``step`` pixels, the longest drawn arrow 0.9 ``step`` long; returns its length in pixels."""
    u, v = field[0].astype(np.float32), field[1].astype(np.float32)
    ys, xs = np.mgrid[step // 2:u.shape[0]:step, step // 2:u.shape[1]:step]
    longest = float(np.hypot(u[ys, xs], v[ys, xs]).max()) if ys.size else 0.0
    ax.quiver(xs, ys, u[ys, xs], v[ys, xs], color="yellow", angles="xy", scale_units="xy",
              scale=max(longest / step, 1e-6) / 0.9, width=0.004)
    return longest


FLOW_KEY_LABEL = "flow colour key"
"""Label of the colour-wheel axes of :func:`draw_flow` (how tests and scripts find it)."""


def flow_key(ax, max_magnitude: float, n: int = 101) -> None:
    """Draw the colour wheel of :func:`~mepipe.featurestore.views.flow_to_rgb` on ``ax``.

    The wheel is a flow field (u, v) = (x, y) * ``max_magnitude`` coded by the
    same function as the flow, so the key cannot drift from the picture: the
    direction from the centre is the flow direction in image coordinates
    (y down), the distance from the centre its magnitude, the rim
    ``max_magnitude`` pixels.
    """
    ys, xs = np.mgrid[-1:1:n * 1j, -1:1:n * 1j]
    scale = max(max_magnitude, 1e-6)
    wheel = flow_to_rgb(np.stack([xs, ys]) * scale, max_magnitude=scale)
    wheel[np.hypot(xs, ys) > 1] = 255
    ax.imshow(wheel, extent=(-1, 1, 1, -1))
    for x, y, text, ha, va in ((1.05, 0, "right", "left", "center"), (-1.05, 0, "left", "right", "center"),
                               (0, -1.08, "up", "center", "bottom"), (0, 1.08, "down", "center", "top")):
        ax.text(x, y, text, ha=ha, va=va, fontsize=7)
    ax.set_xlim(-1.9, 1.9)
    ax.set_ylim(1.7, -1.7)
    ax.set_title(f"key: hue = direction,\nbrightness = magnitude,\nrim = {max_magnitude:.2f} px", fontsize=8)
    ax.set_label(FLOW_KEY_LABEL)
    ax.axis("off")


def draw_flow(field: np.ndarray, face: np.ndarray, title: str, face_name: str = "the first frame"):
    """A (2, H, W) flow field colour-coded (with its key), as arrows over ``face``, and as magnitude.

    Every number is in pixels of the field's own H x W grid (the flow
    variant's stored size, not the source video): the colour coding and its
    key saturate at the field's largest magnitude, the arrows are scaled to
    the longest drawn one, and the magnitude panel's colour bar is in those
    pixels. ``face_name`` says which frame ``face`` is ("frame 3868").
    """
    plt = _pyplot()
    h, w = field.shape[1:]
    mag = np.hypot(field[0].astype(np.float32), field[1].astype(np.float32))
    peak = float(mag.max())
    grid = f"{w}\u00d7{h}"
    fig, axes = plt.subplots(1, 4, figsize=(14, 4.8), constrained_layout=True,
                             gridspec_kw={"width_ratios": [1, 0.5, 1, 1.15]})
    axes[0].imshow(flow_to_rgb(field, max_magnitude=peak if peak > 0 else None))
    axes[0].set_title(f"colour-coded (key on the right)\nbrightest = {peak:.2f} px")
    flow_key(axes[1], peak)
    axes[2].imshow(face, cmap="gray")
    longest = _arrows(axes[2], field, max(4, w // 20))
    axes[2].set_title(f"arrows over {face_name}\nlongest drawn = {longest:.2f} px")
    im = axes[3].imshow(mag, cmap="magma", vmin=0)
    fig.colorbar(im, ax=axes[3], label=f"magnitude, pixels of the {grid} flow grid")
    axes[3].set_title(f"magnitude (max {peak:.2f} px)")
    for ax in axes[[0, 2, 3]]:
        ax.axis("off")
    fig.suptitle(f"{title}  (flow grid {grid} px; 1 px here = 1 pixel of that grid)")
    return fig


def flow_figure(store: FeatureStore, sample: str, feature: FeatureDef, index: int | None = None):
    """A clip's flow field, drawn by :func:`draw_flow`: a per-alpha flow at the test alpha (its first pair,
    the clip's onset and apex), the strongest (or ``index``-th) field of a per-pair feature, or the one field.

    Frames are named by their source frame numbers, as the intensity curve's
    axis names them; the arrows are drawn over the field's first frame.
    """
    name = feature.name
    require(store, sample, feature, features.CROPS, features.FRAME,
            *([features.ONSET_APEX_PAIRS] if "alpha" in feature.dims else []))
    flows = store.read(name, sample).astype(np.float32)
    numbers = store.read(features.FRAME.name, sample)
    if "alpha" in feature.dims:
        params = store.record.stage_params()
        start, end = (int(i) for i in store.read(features.ONSET_APEX_PAIRS.name, sample)[0])
        field = flows[test_alpha_index(params), 0]
        title = f"{name}, test alpha {params['magnify']['test_alpha']:g}"
    elif "pair" in feature.dims:
        strongest = index is None
        index = int(np.argmax(np.abs(flows).sum(axis=(1, 2, 3)))) if strongest else index
        start, end = field_frames(name, index)
        field = flows[index]
        title = f"{name} field {index}" + (" (the strongest)" if strongest else "")
    else:
        events = store.attrs_of(name, sample).get("events", {})  # the pair the stage solved
        start, end = int(events.get("onset_index", 0)), int(events.get("apex_index", len(numbers) - 1))
        field, title = flows, name
    h, w = field.shape[1:]
    import cv2

    crop = _grey(store.read(features.CROPS.name, sample)[start])
    face = cv2.resize(crop if crop.ndim == 2 else crop.mean(-1).astype(np.uint8), (w, h), interpolation=cv2.INTER_AREA)
    return draw_flow(field, face, f"{sample}: {title}: frame {numbers[start]} \u2192 {numbers[end]}",
                     f"frame {numbers[start]}")


LFM_TICKS = {0: "largest decrease", 127: "no change", 255: "largest increase"}
"""Stored LFM values and what they mean (Choi eq. 2: a signed square root of each map's own extremes)."""


def lfm_range_text(raw: np.ndarray) -> str:
    """What 0 and 255 of a stored map stand for: the raw map's extremes, in source pixels."""
    low, high = float(min(raw.min(), 0.0)), float(max(raw.max(), 0.0))
    return f"{low:+.2f} px \u2192 0, {high:+.2f} px \u2192 255"


def draw_lfm(stored: dict[str, np.ndarray], raw: dict[str, np.ndarray] | None, picks: list[int], lag: int,
             per: str, title: str, frame_numbers: np.ndarray | None = None,
             points: dict[str, list[int]] | None = None):
    """Stored LFM/CLFM maps at ``picks``, each titled with the distance change its 0 and 255 stand for.

    Choi's eq. 2 stretches each map (``per="map"``) or the clip (``per="clip"``)
    to its own extremes with a signed square root, so equal colours in two
    maps are not equal changes: every panel therefore states its own range, in
    source pixels of landmark-distance change over ``lag`` frames (from the
    ``raw`` maps; None when they could not be recovered, which the titles say).
    Map k compares frames k and k + ``lag``, named by ``frame_numbers`` (the
    source's numbers) when given. ``points`` gives, per map name, the 1-based
    landmark number of each row and column, shown as ticks (the jaw, brows,
    nose, eyes and mouth of the 68 points; every point of the compact set).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(len(stored), len(picks), figsize=(3.4 * len(picks) + 1.4, 3.6 * len(stored)),
                             constrained_layout=True, squeeze=False)
    name_of = (lambda k: str(frame_numbers[k])) if frame_numbers is not None else str
    for row, (name, maps) in enumerate(stored.items()):
        for col, k in enumerate(picks):
            ax = axes[row, col]
            im = ax.imshow(maps[k], cmap="coolwarm", vmin=0, vmax=255)
            rng = lfm_range_text(raw[name][k] if per == "map" else raw[name]) if raw is not None \
                else "range not recoverable from the landmarks"
            ax.set_title(f"{name} map {k}: frames {name_of(k)}\u2192{name_of(k + lag)}\n{rng}", fontsize=9)
            _landmark_ticks(ax, (points or {}).get(name), maps.shape[-1], label_x=row == len(stored) - 1,
                            label_y=col == 0)
    bar = fig.colorbar(im, ax=axes, shrink=0.7, ticks=list(LFM_TICKS))
    whose = "its own map" if per == "map" else "the whole clip"
    bar.ax.set_yticklabels([f"{v}: {text}" for v, text in LFM_TICKS.items()], fontsize=8)
    bar.set_label(f"stored value: signed \u221a of the change,\nscaled to {whose} (Choi & Song 2020, eq. 2)")
    note = "each map scaled on its own; compare ranges, not colours" if per == "map" else \
        "maps share the clip's scale"
    fig.suptitle(f"{title}\nlandmark distance change over T = {lag} frames, source pixels; {note}")
    return fig


LANDMARK_TICKS = (1, 18, 28, 37, 49, 68)
"""Landmark numbers ticked on a 68-point map: where the jaw, brows, nose, eyes and mouth begin, and the last."""


def _landmark_ticks(ax, numbers: list[int] | None, size: int, label_x: bool, label_y: bool) -> None:
    """Rows and columns of a map ticked with 1-based landmark numbers (or bare, when unknown)."""
    if numbers is None or len(numbers) != size:
        ax.set_xticks([])
        ax.set_yticks([])
        return
    shown = [i for i, n in enumerate(numbers) if n in LANDMARK_TICKS] if size > 30 else list(range(size))
    labels = [str(numbers[i]) for i in shown]
    ax.set_xticks(shown, labels, fontsize=5 if size <= 30 else 6, rotation=90)
    ax.set_yticks(shown, labels, fontsize=5 if size <= 30 else 6)
    if label_x:
        ax.set_xlabel("landmark j (1-based)", fontsize=8)
    if label_y:
        ax.set_ylabel("landmark i (1-based)", fontsize=8)


def lfm_figure(store: FeatureStore, sample: str):
    """LFM (68 points) and CLFM (the compact points) maps at three moments of the clip, by :func:`draw_lfm`.

    The raw maps (source pixels) are recomputed from the stored landmarks with
    the recorded lag and points; they are used only when they code to exactly
    the stored maps, so the stated ranges are those of the stored pictures.
    """
    from mepipe.pipeline.stages import lfm as lfm_stage

    require(store, sample, features.LFM, features.CLFM, features.SFEM, features.LANDMARKS, features.FRAME)
    stored = {"LFM": store.read(features.LFM.name, sample), "CLFM": store.read(features.CLFM.name, sample)}
    params = store.record.stage_params()[features.LFM.stage]
    per = params.get("normalise_per", "map")
    lag = int(store.attrs_of(features.LFM.name, sample).get("events", {}).get("lag", 0))
    landmarks = store.read(features.LANDMARKS.name, sample)
    raw = None
    if lag >= 1 and len(landmarks) > lag:
        points = [p - 1 for p in params["clfm_points"]]
        candidate = {"LFM": lfm_stage.lfm(landmarks, lag), "CLFM": lfm_stage.lfm(landmarks[:, points], lag)}
        if all(np.array_equal(lfm_stage.normalise_lfm(candidate[n], per=per), stored[n]) for n in stored):
            raw = candidate
    picks = sorted({0, len(stored["LFM"]) // 2, len(stored["LFM"]) - 1})
    sfem = float(store.read(features.SFEM.name, sample))
    numbers = {"LFM": list(range(1, landmarks.shape[1] + 1)), "CLFM": [int(p) for p in params["clfm_points"]]}
    return draw_lfm(stored, raw, picks, lag, per, f"{sample}: landmark feature maps (SFEM = {sfem:.3f})",
                    store.read(features.FRAME.name, sample), numbers)


def magnified_figure(store: FeatureStore, sample: str):
    """Original and magnified frames side by side at the apex, with their difference to the first frame.

    The two difference panels share one colour scale, in grey levels, so the
    magnified motion reads against the original's.
    """
    plt = _pyplot()
    import cv2

    require(store, sample, features.MAGNIFIED, features.CROPS, features.STATE_INDEX, features.FRAME)
    mag = store.read(features.MAGNIFIED.name, sample)
    crops = store.read(features.CROPS.name, sample)
    apex = int(store.read(features.STATE_INDEX.name, sample)[APEX_STATE])
    numbers = store.read(features.FRAME.name, sample)
    size = mag.shape[2], mag.shape[1]
    original = np.stack([cv2.resize(_grey(c) if c.shape[-1] == 1 else c, size, interpolation=cv2.INTER_AREA)
                         for c in crops[[0, apex]]])
    magnified = _grey(mag[apex]) if mag.shape[-1] == 1 else mag[apex]
    first = _grey(mag[0]) if mag.shape[-1] == 1 else mag[0]
    alpha = store.attrs_of(features.MAGNIFIED.name, sample).get("events", {}).get("test_alpha", "?")
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.9), constrained_layout=True)
    at, since = f"frame {numbers[apex]}", f"frame {numbers[apex]} \u2212 frame {numbers[0]}"
    panels = [(original[1], f"original, apex ({at})", "gray"),
              (magnified, f"magnified (alpha {alpha}), apex ({at})", "gray"),
              (_difference(original[1], original[0]), f"|original|: {since}", "magma"),
              (_difference(magnified, first), f"|magnified|: {since}", "magma")]
    vmax = max(float(p[0].max()) for p in panels[2:]) or 1.0
    for ax, (img, title, cmap) in zip(axes, panels):
        shown = ax.imshow(img, cmap=cmap, vmin=0 if cmap == "magma" else None, vmax=vmax if cmap == "magma" else None)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.colorbar(shown, ax=axes[2:], shrink=0.9, label="absolute difference, grey levels (0-255)")
    fig.suptitle(f"{sample}: Eulerian magnification")
    return fig


def _difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| per pixel in grey levels (the largest over channels for colour)."""
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32))
    return diff.max(axis=-1) if diff.ndim == 3 else diff


def intensity_figure(store: FeatureStore, sample: str):
    """Intensity and std-diff curves with ground-truth and estimated onset/apex/offset marked."""
    plt = _pyplot()
    require(store, sample, features.FRAME, features.INTENSITY, features.STDDIFF)
    frames = store.read(features.FRAME.name, sample)
    row = _row(store, sample)
    fig, ax = plt.subplots(figsize=(8, 3.8), constrained_layout=True)
    ax.plot(frames, store.read(features.INTENSITY.name, sample), label="intensity (NCC with apex)", color="C0")
    sd = store.read(features.STDDIFF.name, sample)
    ax.plot(frames, sd / max(sd.max(), 1e-9), label="std-diff (scaled)", color="C1")
    for key, style in (("onset", ":"), ("apex", "-"), ("offset", "--")):
        if not np.ma.is_masked(row.get(key)) and row.get(key) is not None and not _isna(row[key]):
            ax.axvline(row[key], color="k", ls=style, lw=1.2, label=f"{key} (sheet)")
        est = row.get(f"{key}_est")
        if est is not None and not _isna(est):
            ax.axvline(est, color="C3", ls=style, lw=1.2, label=f"{key} (estimated)")
    ax.set_xlabel("frame number")
    ax.set_ylabel("0..1 within the clip\n(intensity: 1 at the apex, 0 least like it;\nstd-diff: over its peak)",
                  fontsize=8)
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
    plt = _pyplot()
    require(store, sample, features.APPEARANCE_MASK, features.MAGNIFIED_SMALL, features.HEATMAP)
    mask = np.asarray(store.dataset_array(features.APPEARANCE_MASK.name))
    face = store.read(features.MAGNIFIED_SMALL.name, sample)[0, test_alpha_index(store.record.stage_params())]
    face = _grey(face) if face.shape[-1] == 1 else face.mean(-1)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), constrained_layout=True)
    axes[0].imshow(face, cmap="gray")
    axes[0].imshow(np.ma.masked_where(~mask, mask), cmap="autumn", alpha=0.45)
    axes[0].set_title(f"mask (red): {int(mask.sum())} of {mask.size} pixels kept")
    im = axes[1].imshow(store.read(features.HEATMAP.name, sample), cmap="magma")
    fig.colorbar(im, ax=axes[1], label="grey levels, summed over the clip's frames")
    axes[1].set_title("heat map sum_t |I(t) - I(0)|")
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"{sample}: STRCN-A appearance mask")
    return fig


def save(fig, path) -> None:
    """Write a figure as a PNG and free it."""
    plt = _pyplot()
    fig.savefig(path, dpi=130)
    plt.close(fig)
