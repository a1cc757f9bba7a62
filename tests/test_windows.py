"""Long videos window by window: how a video is cut, which stages run on it and in which form, and their keys."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mepipe.featurestore import features
from mepipe.featurestore.cachekey import stage_key
from mepipe.featurestore.errors import UnknownNameError
from mepipe.pipeline.context import ClipContext, Window
from mepipe.pipeline.stages import (STAGES, WINDOW, StageOutput, Windowed, default_params, params_from_mapping,
                                    register_stage, stage_order, stages_for)
from mepipe.pipeline.stages.windows import cut, merge_events, windows_touching


def test_a_video_is_cut_into_windows_of_the_given_length_the_last_shorter():
    assert cut(40, 16) == [Window(0, 0, 16), Window(1, 16, 32), Window(2, 32, 40)]
    assert cut(32, 16) == [Window(0, 0, 16), Window(1, 16, 32)]
    assert [len(w) for w in cut(5, 16)] == [5]


def test_the_windows_a_stretch_of_frames_touches():
    # frames 14..20 (stop 21) lie in windows 0 (0..15) and 1 (16..31); 16..31 in window 1 alone
    assert list(windows_touching(14, 21, 16)) == [0, 1]
    assert list(windows_touching(16, 32, 16)) == [1]
    assert list(windows_touching(16, 33, 16)) == [1, 2]


def test_window_events_keep_what_every_window_agrees_on_and_list_the_rest():
    merged = merge_events([{"backend": "opencv", "gaps": None}, {"backend": "opencv", "gaps": [3]}])
    assert merged == {"backend": "opencv", "gaps": [None, [3]]}


def test_a_window_context_holds_the_window_and_its_overlap():
    whole = ClipContext("v", tuple(f"{n}.jpg" for n in range(10, 50)), tuple(range(10, 50)), None, 30.0,
                        (None, None, None))
    ctx = whole.span(Window(1, 16, 32), 35)
    assert (ctx.frame_numbers[0], ctx.frame_numbers[-1], len(ctx.frame_files)) == (26, 44, 19)
    assert (ctx.window, ctx.fps, ctx.truth) == (Window(1, 16, 32), 30.0, (None, None, None))


def test_stages_that_run_on_long_videos_and_their_order():
    assert stage_order(None, "video") == ["landmarks", "align", "flow_consecutive", "kim", "flow_apart", "roi_motion"]
    assert not {"flow_apart", "roi_motion"} & set(stage_order(None))  # a store of clips never builds them
    assert stages_for(["core", "kim"], "video") == ["landmarks", "align", "kim"]  # apex left out of the group
    assert stages_for(["spotting"], "video") == ["landmarks", "align", "flow_apart", "roi_motion"]


@pytest.mark.parametrize("names, unit, message", [
    (["magnify"], "video", "no stage of group 'magnify' runs on long videos"),
    (["apex"], "video", "apex work on annotated clips"),
    (["flow_first_each"], "video", "flow_first_each work on annotated clips"),
    (["roi_magnitude"], "clip", "roi_motion run on long videos only"),
])
def test_a_stage_of_the_other_unit_is_refused_with_the_reason(names, unit, message):
    with pytest.raises(UnknownNameError, match=message):
        stages_for(names, unit)


def test_kims_video_form_reads_the_crops_and_writes_the_frames_only():
    kim = STAGES["kim"].for_videos()
    assert (kim.reads, kim.outputs, [f.name for f in kim.inputs]) == (("align",), ("frames_rgb",), ["crops"])
    assert STAGES["kim"].reads == ("align", "apex")  # the clip form is unchanged


def test_long_videos_default_to_128_pixel_crops_and_a_config_overrides_it():
    assert default_params("video")["align"].size == 128
    assert default_params()["align"].size == 256
    assert params_from_mapping({"align": {"size": 96}}, "video")["align"].size == 96


def test_the_window_length_is_in_every_video_stages_key_and_in_no_clip_stages():
    params = default_params("video")
    longer = {**params, WINDOW: dataclasses.replace(params[WINDOW], frames=512)}
    align = STAGES["align"]
    video = align.for_videos()
    assert video.key_params(params) != video.key_params(longer)
    assert align.key_params(params) == align.key_params(longer)
    assert stage_key("align", "2", video.key_params(params)) != stage_key("align", "2", align.key_params(params))


def test_a_window_form_reading_a_stage_without_one_is_refused():
    def kernel(ctx, inputs, params, read):
        return StageOutput({})

    with pytest.raises(ValueError, match="reads \\['apex'\\], which do not run on long videos"):
        register_stage(name="window_bad", version="1", params=type(default_params()["kim"]), kernel=kernel,
                       reads=("apex",), writes=(dataclasses.replace(features.STDDIFF, name="bad_w",
                                                                    stage="window_bad"),),
                       window=Windowed())
    assert "window_bad" not in STAGES


def test_roi_overlap_follows_k_and_the_videos_rate():
    roi = STAGES["roi_motion"]
    params = default_params("video")["roi_motion"]
    assert (roi.window.overlap(params, 200.0), roi.window.overlap(params, 30.0)) == (37, 6)
    assert roi.window.overlap(dataclasses.replace(params, k=12), 30.0) == 12
    assert np.isclose(params.k_seconds, 0.185)
