"""`pyfacelang render` and its error handling, run as a user would (subprocess)."""
import subprocess
import sys

import cv2
import numpy as np
import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pyfacelang", *args], capture_output=True, text=True, cwd=cwd)


def test_render_set(tmp_path):
    out = tmp_path / "face.png"
    res = run("render", "--model", "builtin", "--set", "jawOpen=0.8,mouthSmileLeft=1", "-o", str(out), "--size", "256")
    assert res.returncode == 0, res.stderr
    img = cv2.imread(str(out))
    assert img.shape == (256, 256, 3)
    neutral = tmp_path / "n.png"
    assert run("render", "-o", str(neutral), "--size", "256").returncode == 0
    diff = np.abs(img.astype(int) - cv2.imread(str(neutral)).astype(int)).sum(2) > 30
    ys, _ = np.nonzero(diff)
    assert diff.sum() > 500 and ys.mean() > 128  # the change is in the lower face


def test_render_sheet(tmp_path):
    out = tmp_path / "sheet.png"
    res = run("render", "--sheet", "-o", str(out), "--size", "256")
    assert res.returncode == 0, res.stderr
    img = cv2.imread(str(out))
    # 53 tiles (neutral + 52) in 8 columns -> 7 rows of 128 px tiles plus a title band
    assert img.shape[1] > 8 * 128 and img.shape[0] > 7 * 128


@pytest.mark.parametrize("args,needle", [
    (["--set", "jawOpne=1"], "jawOpen"),  # unknown name, with a suggestion
    (["--set", "jawOpen"], "NAME=VALUE"),
    (["--set", "jawOpen=wide"], "not a number"),
    (["--set", "jawOpen=1.5"], "outside its range"),
    (["--model", "flame"], "--flame-path"),
    (["--model", "flame", "--flame-path", "/nonexistent/generic_model.pkl"], "not found"),
    (["--model", "flame", "--flame-path", "/"], "is a directory"),
    (["--set", "jawOpen=nan"], "finite"),
    (["--set", "head_tx=1e30"], "outside its range"),
    (["--yaw", "nan"], "finite"),
    (["--size", "100000"], "between"),
])
def test_render_bad_input(tmp_path, args, needle):
    out = tmp_path / "x.png"
    res = run("render", *args, "-o", str(out))
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and "W0000" not in ln and "I0000" not in ln]
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()


def test_render_jpg_is_jpeg(tmp_path):
    out = tmp_path / "face.jpg"
    assert run("render", "-o", str(out), "--size", "128").returncode == 0
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG magic, not PNG bytes


def test_render_missing_output_folder(tmp_path):
    out = tmp_path / "missing" / "x.png"
    res = run("render", "-o", str(out))
    assert res.returncode != 0 and "Traceback" not in res.stderr and not out.exists()


def test_render_keeps_existing_file_on_error(tmp_path):
    out = tmp_path / "x.png"
    out.write_bytes(b"old")
    assert run("render", "--set", "nope=1", "-o", str(out)).returncode != 0
    assert out.read_bytes() == b"old"


def test_render_flame_file(tmp_path):
    """The CLI renders a FLAME model from a file in the official .npz layout."""
    from test_flame import make_arrays  # small model in the official layout (300 shape + 2 expression)

    path = tmp_path / "flame.npz"
    np.savez(path, **make_arrays(num_blend=302))
    out = tmp_path / "flame.png"
    res = run("render", "--model", "flame", "--flame-path", str(path), "--set", "jaw_rx=0.3", "-o", str(out), "--size", "128")
    assert res.returncode == 0, res.stderr
    assert cv2.imread(str(out)).shape == (128, 128, 3)
