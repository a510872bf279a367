"""Tests for pyfacelang.render: rasterizer, camera framing, shading, layout
helpers and atomic video / PNG output."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from pyfacelang.errors import FaceLangError, ShapeError
from pyfacelang.render import (DEFAULT_SKIN, Camera, Framing, VideoWriter, grid, heat_colors,
                               hstack_frames, label, rasterize, render_mesh, vertex_normals,
                               write_image)

UNLIT = dict(shading="flat", ambient=1.0, diffuse=0.0, headlight=0.0, specular=0.0)


def unit_camera(size=64, **kw) -> Camera:
    """1 mm per pixel, model origin at the image centre."""
    return Camera(width=size, height=size,
                  framing=Framing(pivot=(0.0, 0.0, 0.0), center=(0.0, 0.0), mm_per_pixel=1.0), **kw)


def bumpy_grid(n=21, size=80.0, nose=30.0):
    """Open height-field surface facing +z with a nose bump at the centre."""
    xs = np.linspace(-size / 2, size / 2, n)
    X, Y = np.meshgrid(xs, xs)
    Z = nose * np.exp(-(X ** 2 + Y ** 2) / (2 * 8.0 ** 2))
    verts = np.stack([X, Y, Z], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n - 1), np.arange(n - 1), indexing="ij")
    a = (i * n + j).ravel()
    tris = np.concatenate([np.stack([a, a + 1, a + n + 1], 1), np.stack([a, a + n + 1, a + n], 1)])
    return verts, tris


def uv_sphere(nu=24, nv=14, r=50.0):
    th = np.linspace(0, np.pi, nv)[1:-1]
    ph = np.linspace(0, 2 * np.pi, nu, endpoint=False)
    T, P = np.meshgrid(th, ph, indexing="ij")
    verts = np.stack([r * np.sin(T) * np.sin(P), r * np.cos(T), r * np.sin(T) * np.cos(P)], -1)
    verts = np.vstack([verts.reshape(-1, 3), [[0, r, 0], [0, -r, 0]]])
    rows, top, bot = nv - 2, len(verts) - 2, len(verts) - 1
    tris = []
    for i in range(rows - 1):
        for j in range(nu):
            a, b = i * nu + j, i * nu + (j + 1) % nu
            tris += [[a, a + nu, b], [b, a + nu, b + nu]]
    for j in range(nu):
        tris += [[top, j, (j + 1) % nu], [bot, (rows - 1) * nu + (j + 1) % nu, (rows - 1) * nu + j]]
    return verts, np.array(tris)


# ------------------------------------------------------------------ raster
def test_single_triangle_pixels_and_bgr_order():
    verts = np.array([[-20.0, -20.0, 0.0], [20.0, -20.0, 0.0], [-20.0, 20.0, 0.0]])
    img = render_mesh(verts, [[0, 1, 2]], camera=unit_camera(), face_colors=[[1.0, 0.0, 0.0]],
                      background=(0.0, 0.0, 1.0), **UNLIT)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    # expected coverage from pixel centres in model coordinates
    px, py = np.meshgrid(np.arange(64) + 0.5, np.arange(64) + 0.5)
    x, y = px - 32.0, 32.0 - py
    expected = (x >= -20) & (y >= -20) & (x + y <= 1e-9)
    red = np.all(img == (0, 0, 255), axis=2)  # pure red in BGR
    blue = np.all(img == (255, 0, 0), axis=2)  # background (0, 0, 1) RGB
    np.testing.assert_array_equal(red, expected)
    np.testing.assert_array_equal(blue, ~expected)
    # +y up: the right angle (bottom-left corner) is at the bottom left of the image
    assert red[50, 14] and not red[14, 50]


def test_vertex_colors_are_interpolated_rgb():
    verts = np.array([[-30.0, -30.0, 0.0], [30.0, -30.0, 0.0], [0.0, 30.0, 0.0]])
    cols = np.eye(3)  # corner 0 red, 1 green, 2 blue
    img = render_mesh(verts, [[0, 1, 2]], camera=unit_camera(), vertex_colors=cols, **UNLIT)
    b, g, r = (int(c) for c in img[60, 5])  # near corner 0 (bottom left)
    assert r > 200 and g < 40 and b < 40
    b, g, r = (int(c) for c in img[5, 32])  # near corner 2 (top)
    assert b > 200 and r < 40 and g < 40


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_zbuffer_nearer_triangle_wins(order):
    far = [[-25.0, -25.0, 0.0], [25.0, -25.0, 0.0], [0.0, 25.0, 0.0]]
    near = [[-25.0, 25.0, 10.0], [25.0, 25.0, 10.0], [0.0, -25.0, 10.0]]
    verts = np.array(far + near)
    tris = np.array([[0, 1, 2], [3, 4, 5]])[list(order)]
    colors = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])[list(order)]  # far red, near green
    img = render_mesh(verts, tris, camera=unit_camera(), face_colors=colors, **UNLIT)
    assert tuple(img[32, 32]) == (0, 255, 0)  # overlap: green (nearer) wins
    assert tuple(img[55, 10]) == (0, 0, 255)  # only the far triangle: red
    # seen from behind, the z = 0 triangle is the nearer one
    back = render_mesh(verts, tris, camera=unit_camera(yaw=180), face_colors=colors, **UNLIT)
    assert tuple(back[32, 32]) == (0, 0, 255)
    tri_id, bary, depth = rasterize(unit_camera().project(verts), tris, 64, 64)
    assert tri_id[32, 32] == list(order).index(1) and depth[32, 32] == pytest.approx(10.0)
    np.testing.assert_allclose(bary[tri_id >= 0].sum(axis=1), 1.0)
    assert tri_id[0, 0] == -1 and depth[0, 0] == -np.inf


def test_camera_fit_keeps_mesh_inside_image():
    verts, tris = uv_sphere()
    verts = verts * [1.0, 1.6, 0.7] + [300.0, -120.0, 40.0]  # off-centre, elongated
    for yaw, pitch in [(0, 0), (35, -20), (90, 10)]:
        cam = Camera(yaw=yaw, pitch=pitch, width=96, height=64).fit(verts, margin=0.1)
        xy = cam.project(verts)[:, :2]
        assert xy[:, 0].min() >= 0.1 * 96 - 1e-6 and xy[:, 0].max() <= 0.9 * 96 + 1e-6
        assert xy[:, 1].min() >= 0.1 * 64 - 1e-6 and xy[:, 1].max() <= 0.9 * 64 + 1e-6
        # it fills the image along one axis
        fill = max(np.ptp(xy[:, 0]) / (0.8 * 96), np.ptp(xy[:, 1]) / (0.8 * 64))
        assert fill == pytest.approx(1.0)
        img = render_mesh(verts, tris, camera=cam)
        border = np.concatenate([img[:4].reshape(-1, 3), img[-4:].reshape(-1, 3),
                                 img[:, :4].reshape(-1, 3), img[:, -4:].reshape(-1, 3)])
        assert np.all(border == border[0])  # only background near the edges
    # a fixed framing does not change with the mesh (no zoom jitter in videos)
    cam = Camera(width=64, height=64).fit(verts)
    assert cam.fit(verts).framing == cam.framing
    xy_small = cam.project(verts * 0.5)[:, :2]
    assert np.ptp(xy_small[:, 0]) < 0.6 * np.ptp(cam.project(verts)[:, 0])


def test_yaw_90_moves_protruding_feature_sideways():
    verts, tris = bumpy_grid()
    tip = verts[np.argmax(verts[:, 2])]
    front = Camera(width=128, height=128).fit(verts)
    framing = front.framing
    side = Camera(yaw=90, width=128, height=128, framing=framing)
    x_front = front.project(tip[None])[0, 0]
    x_side = side.project(tip[None])[0, 0]
    assert abs(x_front - 64) < 2  # nose in the middle seen from the front
    assert x_side > x_front + 15  # positive yaw moves +z toward image right
    img = render_mesh(verts, tris, camera=Camera(yaw=90, width=128, height=128))
    fg = np.any(img != img[0, 0], axis=2)
    cols = np.nonzero(fg.any(axis=0))[0]
    rightmost_rows = np.nonzero(fg[:, cols.max()])[0]
    # the sideways-facing nose is the rightmost thing, at mid height
    assert abs(rightmost_rows.mean() - 64) < 8 and np.ptp(cols) < 50


def test_smooth_and_flat_shading():
    verts, tris = uv_sphere()
    cam = Camera(width=96, height=96).fit(verts)
    smooth = render_mesh(verts, tris, camera=cam, shading="smooth")
    flat = render_mesh(verts, tris, camera=cam, shading="flat")
    bg = smooth[0, 0]
    np.testing.assert_array_equal(np.any(smooth != bg, 2), np.any(flat != bg, 2))
    assert np.abs(smooth.astype(int) - flat).max() > 10
    # flat: one colour per triangle; smooth: colour varies inside triangles
    tri_id, _, _ = rasterize(cam.project(verts), tris, 96, 96)
    big = np.bincount(tri_id[tri_id >= 0]).argmax()
    assert len(np.unique(flat[tri_id == big], axis=0)) == 1
    assert len(np.unique(smooth[tri_id == big], axis=0)) > 1
    # lit from the front: centre brighter than the rim
    gray = cv2.cvtColor(smooth, cv2.COLOR_BGR2GRAY).astype(int)
    assert gray[48, 48] > gray[48, 12] + 30 and gray[48, 48] > gray[48, 84] + 30
    # two-sided: winding (either way, or mixed) does not change the picture
    flipped = render_mesh(verts, tris[:, ::-1], camera=cam)
    assert np.abs(flipped.astype(int) - smooth).max() <= 1
    mixed = tris.copy()
    mixed[::3] = mixed[::3, ::-1]
    assert np.abs(render_mesh(verts, mixed, camera=cam).astype(int) - smooth).mean() < 1.0


def test_vertex_normals_sphere_point_outward():
    verts, tris = uv_sphere()
    n = vertex_normals(verts, tris)
    radial = verts / np.linalg.norm(verts, axis=1, keepdims=True)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0)
    assert np.all(np.abs(np.sum(n * radial, axis=1)) > 0.95)


def test_degenerate_and_offscreen_triangles_do_not_crash():
    verts = np.array([[0.0, 0, 0], [10, 0, 0], [20, 0, 0], [0, 10, 0], [1e6, 1e6, 0], [-1e6, 5e5, 3]])
    tris = np.array([[0, 1, 2], [0, 0, 3], [1, 1, 1], [0, 4, 5], [0, 1, 3]])
    img = render_mesh(verts, tris, camera=unit_camera())
    assert img.shape == (64, 64, 3)
    empty = render_mesh(verts, np.zeros((0, 3), int), camera=unit_camera())
    assert np.all(empty == empty[0, 0])


def test_bad_inputs_raise_shape_errors():
    verts, tris = bumpy_grid(n=5)
    bad = verts.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ShapeError, match="NaN"):
        render_mesh(bad, tris)
    with pytest.raises(ShapeError, match=r"\(V, 3\)"):
        render_mesh(verts[:, :2], tris)
    with pytest.raises(ShapeError, match=r"\(F, 3\)"):
        render_mesh(verts, tris[:, :2])
    with pytest.raises(ShapeError, match="indices"):
        render_mesh(verts, tris + len(verts))
    with pytest.raises(ShapeError, match=r"\(V, 3\)"):
        render_mesh(verts, tris, vertex_colors=np.ones((3, 3)))
    with pytest.raises(FaceLangError):
        render_mesh(verts, tris, shading="phong")
    with pytest.raises(ShapeError, match="NaN"):
        Camera().fit(bad)


# ----------------------------------------------------------------- compose
def test_grid_label_hstack_sizes():
    imgs = [np.full((20, 30, 3), k * 40, np.uint8) for k in range(5)]
    sheet = grid(imgs, labels=[f"#{k}" for k in range(5)], cols=3, pad=4)
    assert sheet.shape == (2 * 20 + 3 * 4, 3 * 30 + 4 * 4, 3)
    with pytest.raises(ShapeError):
        grid(imgs, labels=["only one"])
    base = np.full((60, 120, 3), 200, np.uint8)
    out = label(base, "hello", position="bottom")
    assert out.shape == base.shape and np.array_equal(base, np.full_like(base, 200))  # copy
    changed = np.any(out != base, axis=2)
    assert changed[40:].any() and not changed[:20].any()
    top = label(base, "hello", position="top")
    assert np.any(top[:20] != base[:20]) and np.array_equal(top[40:], base[40:])
    wide = hstack_frames([np.zeros((40, 30, 3), np.uint8), np.zeros((20, 30, 3), np.uint8)],
                         labels=["a", "b"])
    assert wide.shape == (40, 30 + 60, 3)


def test_heat_colors():
    vals = np.array([0.0, 0.5, 1.0, -2.0])
    cols = heat_colors(vals)
    assert cols.shape == (4, 3) and cols.min() >= 0 and cols.max() <= 1
    np.testing.assert_allclose(cols[0], DEFAULT_SKIN)
    warmth = cols[:, 0] - cols[:, 2]  # red minus blue
    assert warmth[0] < warmth[1] < warmth[2] < warmth[3] and warmth[3] > warmth[0] + 0.4
    np.testing.assert_allclose(heat_colors(vals, vmax=4.0)[3], heat_colors([1.0, 2.0], vmax=4.0)[1])
    np.testing.assert_allclose(heat_colors(np.zeros(3)), np.tile(DEFAULT_SKIN, (3, 1)))


# ------------------------------------------------------------------- video
def _frames(n=6, size=(48, 64)):
    verts, tris = bumpy_grid(n=9)
    cam = Camera(width=size[1], height=size[0]).fit(verts)
    return [render_mesh(verts, tris, camera=Camera(yaw=10 * k, width=size[1], height=size[0],
                                                   framing=cam.framing)) for k in range(n)]


def test_video_writer_produces_readable_mp4(tmp_path):
    path = tmp_path / "clip.mp4"
    frames = _frames()
    with VideoWriter(path, fps=10) as vw:
        for f in frames:
            vw.write(f)
    assert os.listdir(tmp_path) == ["clip.mp4"]  # no temp files left
    cap = cv2.VideoCapture(str(path))
    try:
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(frames)
        ok, first = cap.read()
        assert ok and first.shape == frames[0].shape
        assert np.abs(first.astype(int) - frames[0]).mean() < 12
    finally:
        cap.release()


def test_video_writer_leaves_nothing_on_exception(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(path) as vw:
            for f in _frames(3):
                vw.write(f)
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    # a wrong-sized frame aborts the video and keeps an older file intact
    path.write_bytes(b"old")
    with pytest.raises(ShapeError, match="first frame"):
        with VideoWriter(path) as vw:
            vw.write(np.zeros((48, 64, 3), np.uint8))
            vw.write(np.zeros((50, 64, 3), np.uint8))
    assert os.listdir(tmp_path) == ["clip.mp4"] and path.read_bytes() == b"old"


def test_output_errors_and_png(tmp_path):
    with pytest.raises(FaceLangError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "x.mp4")
    with pytest.raises(FaceLangError, match="does not exist"):
        write_image(tmp_path / "missing" / "x.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FaceLangError, match="no frames"):
        with VideoWriter(tmp_path / "empty.mp4"):
            pass
    img = _frames(1)[0]
    write_image(tmp_path / "a.png", img)
    assert os.listdir(tmp_path) == ["a.png"]
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "a.png")), img)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "a.png").st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
