"""The built-in rig's template: the shipped asset is what the build script
makes from MediaPipe's output on drawn faces, and its topology helpers are sound."""
from importlib import resources

import numpy as np

from pyfacelang.face import template_build as tb


def test_triangles_from_edges_drops_separating_triangles():
    # An octahedron's faces plus one separating triangle: an extra vertex 6
    # joined to the triangle (0, 1, 2) on top makes three new faces, and
    # (0, 1, 2) itself becomes a separating cycle whose edges border 3 faces.
    octa = [(0, 1, 2), (0, 2, 3), (0, 3, 4), (0, 4, 1), (5, 2, 1), (5, 3, 2), (5, 4, 3), (5, 1, 4)]
    edges = {tuple(sorted(e)) for t in octa for e in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2]))}
    assert len(tb.triangles_from_edges(edges)) == 8
    edges |= {(0, 6), (1, 6), (2, 6)}
    faces = {tuple(t) for t in tb.triangles_from_edges(edges)}
    assert (0, 1, 2) not in faces and {(0, 1, 6), (0, 2, 6), (1, 2, 6)} <= faces


def test_mirror_map_is_an_involution():
    rng = np.random.default_rng(0)
    flip = np.array([-1.0, 1.0, 1.0])
    face = rng.uniform([1, -50, -20], [60, 50, 20], (234, 3))
    iris = rng.uniform([20, -5, 0], [40, 5, 2], (5, 3))
    perm = rng.permutation(468)  # shuffle so pairs are not at fixed offsets
    v = np.concatenate([np.concatenate([face, face * flip])[perm], iris, iris * flip])
    m = tb.mirror_map(v)
    np.testing.assert_array_equal(m[m], np.arange(478))
    np.testing.assert_allclose(v[m], v * flip)


def test_shipped_template_is_what_the_script_makes():
    v, tris, mirror, n = tb.build_template()
    with resources.files("pyfacelang.face").joinpath("data/builtin_template.npz").open("rb") as f:
        shipped = np.load(f)
        assert n >= 40
        np.testing.assert_allclose(v, shipped["vertices"], atol=0.05)  # mm
        np.testing.assert_array_equal(tris, shipped["triangles"])
        np.testing.assert_array_equal(mirror, shipped["mirror"])
    assert len(tris) == 852  # 1322 tessellation edges; Euler characteristic -2 (3 holes)
