"""Tracking: frame sources, MediaPipe landmarks, the per-frame face fitter."""
