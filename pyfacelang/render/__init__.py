"""Software preview renderer for face meshes (pure numpy + OpenCV).

    from pyfacelang.render import Camera, render_mesh, VideoWriter
    cam = Camera(yaw=20).fit(vertices)
    img = render_mesh(vertices, triangles, camera=cam)   # (H, W, 3) uint8 BGR
"""
from .compose import grid, heat_colors, hstack_frames, label
from .raster import (DEFAULT_LIGHT_DIR, DEFAULT_SKIN, Camera, Framing, rasterize,
                     render_mesh, vertex_normals)
from .video import VideoWriter, write_image

__all__ = [
    "Camera", "Framing", "render_mesh", "rasterize", "vertex_normals",
    "DEFAULT_SKIN", "DEFAULT_LIGHT_DIR",
    "label", "grid", "hstack_frames", "heat_colors",
    "VideoWriter", "write_image",
]
