"""Tracking end to end: frame sources, `pyfacelang track` on a video rendered
from the rig (MediaPipe detects it), the output file contract, bad input, and
the real clips in ../shared/media when present."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pyfacelang.errors import FaceLangError
from pyfacelang.track.evaluate import default_media_dir
from pyfacelang.track.source import SourceError, open_source

MEDIA = default_media_dir()
requires_media = pytest.mark.skipif(MEDIA is None, reason="../shared/media not present")


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pyfacelang", *args], capture_output=True, text=True, cwd=cwd)


def one_error_line(res):
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith(("W0000", "I0000", "WARNING", "INFO"))]
    assert res.returncode != 0 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


@pytest.fixture(scope="module")
def rig_video(tmp_path_factory, rig):
    from conftest import render_jaw_video

    return render_jaw_video(tmp_path_factory.mktemp("video"), rig)


def test_track_rendered_rig_video(tmp_path, rig_video, rig):
    video, jaw = rig_video
    out, prev = tmp_path / "out.npz", tmp_path / "prev.mp4"
    res = run("track", str(video), "-o", str(out), "--preview", str(prev), "-q")
    assert res.returncode == 0, res.stderr
    d = np.load(out, allow_pickle=False)
    T = len(jaw)
    assert d["params"].shape == (T, rig.num_params) and d["params"].dtype == np.float32
    assert list(d["param_names"]) == list(rig.param_names)
    assert d["valid"].dtype == bool and d["valid"].all()
    assert d["landmarks"].shape == (T, 478, 3) and d["residual"].shape == (T,)
    assert float(d["fps"]) == 25.0 and str(d["model"]) == "builtin"
    assert d["rest_rotation"].shape == (3,) and np.degrees(np.abs(d["rest_rotation"])).max() < 5  # a frontal camera
    est = d["params"][:, rig.param_index("jawOpen")]
    assert np.corrcoef(jaw, est)[0, 1] > 0.8 and abs(int(est.argmax()) - int(jaw.argmax())) <= 5
    import cv2

    cap = cv2.VideoCapture(str(prev))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == T


def test_track_max_frames_and_image_folder(tmp_path, rig_video):
    import cv2

    video, _ = rig_video
    out = tmp_path / "a.npz"
    assert run("track", str(video), "-o", str(out), "--max-frames", "5", "-q").returncode == 0
    assert np.load(out)["params"].shape[0] == 5
    folder = tmp_path / "frames"
    folder.mkdir()
    cap = cv2.VideoCapture(str(video))
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cap.read()[1])
    cv2.imwrite(str(folder / "blank.png"), np.zeros((64, 64, 3), np.uint8))  # no face: invalid frame, run goes on
    out2 = tmp_path / "b.npz"
    assert run("track", str(folder), "-o", str(out2), "-q").returncode == 0
    d = np.load(out2)
    assert d["valid"].tolist() == [True, True, True, False]
    assert np.isnan(d["params"][3]).all() and np.isnan(d["landmarks"][3]).all()


def test_track_bad_input(tmp_path):
    out = tmp_path / "x.npz"
    assert "not found" in one_error_line(run("track", str(tmp_path / "missing.mp4"), "-o", str(out)))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 100)
    assert "cannot open" in one_error_line(run("track", str(corrupt), "-o", str(out)))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in one_error_line(run("track", str(empty), "-o", str(out)))
    assert "does not exist" in one_error_line(run("track", str(corrupt), "-o", str(tmp_path / "no" / "x.npz")))
    assert not out.exists()


def test_open_source_kinds(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        open_source(tmp_path / "nope.mp4")
    img = tmp_path / "one.png"
    import cv2

    cv2.imwrite(str(img), np.zeros((8, 8, 3), np.uint8))
    src = open_source(str(img))
    frames = list(src)
    assert len(frames) == 1 and frames[0].image.shape == (8, 8, 3)
    assert isinstance(SourceError("x"), FaceLangError)


@requires_media
@pytest.mark.parametrize("clip", sorted(p.name for p in (MEDIA or Path(".")).glob("*.mp4")))
def test_track_real_clips(tmp_path, clip):
    out = tmp_path / "clip.npz"
    res = run("track", str(MEDIA / clip), "-o", str(out), "-q")
    assert res.returncode == 0, res.stderr
    d = np.load(out)
    assert d["valid"].all(), f"no face in some frames of {clip}"
    iod = np.linalg.norm(d["landmarks"][:, 33, :2] - d["landmarks"][:, 263, :2], axis=1)
    assert np.mean(d["residual"] / iod) < 0.03


def test_parameter_file_head_is_read_relative_to_its_rest(tmp_path, rig):
    """Tokens read a track's head rotation relative to its resting pose; a
    file without one (older tracks, detokenize output) is read as it is."""
    from pyfacelang.tokens.inputs import motion_of

    T = 5
    P = np.tile(rig.neutral_params(), (T, 1)).astype(np.float32)
    P[:, rig.slices["rotation"].start + 1] = 0.2                     # turned 11.5 degrees to the side throughout
    arrays = {"params": P, "param_names": np.array(rig.param_names)}
    plain, _ = motion_of(arrays, "x.npz")
    assert np.allclose(plain[:, 53], 0.2)
    rel, _ = motion_of({**arrays, "rest_rotation": np.array([0.0, 0.2, 0.0], np.float32)}, "x.npz")
    assert np.abs(rel[:, 52:]).max() < 1e-6
    with pytest.raises(FaceLangError, match="x.npz: rest_rotation"):
        motion_of({**arrays, "rest_rotation": np.zeros(2, np.float32)}, "x.npz")


@pytest.mark.parametrize("n", [1, 5, 478])
def test_landmark_array_reads_the_wire_bytes_like_the_attributes(n):
    """The fast byte read gives exactly what 478 x 3 attribute reads give, and
    a landmark with another field set (visibility) takes the slow path."""
    from mediapipe.framework.formats import landmark_pb2

    from pyfacelang.track.landmarks import landmark_array

    rng = np.random.default_rng(n)
    for extra in (False, True):
        lst = landmark_pb2.NormalizedLandmarkList()
        xyz = rng.normal(0.5, 0.3, (n, 3)).astype(np.float32)
        xyz[0] = 0.0                     # zeros are still written (proto2 optional)
        for i, (x, y, z) in enumerate(xyz):
            p = lst.landmark.add(x=float(x), y=float(y), z=float(z))
            if extra and i == n // 2:
                p.visibility = 0.9
        want = np.array([(p.x * 640, p.y * 480, p.z * 640) for p in lst.landmark], dtype=np.float32)
        got = landmark_array(lst, 640, 480)
        assert got.dtype == np.float32 and got.shape == (n, 3)
        np.testing.assert_array_equal(got, want)
