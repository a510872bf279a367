"""The compiled extension: it imports, reports how it was built, and the
C++-only build (FACELANG_CUDA=off, as on a machine without nvcc) works."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pyfacelang
from pyfacelang import _C

ROOT = Path(__file__).resolve().parents[1]


def test_extension_imports_and_reports():
    assert isinstance(_C.built_with_cuda(), bool)
    n = _C.cuda_device_count()
    assert isinstance(n, int) and n >= 0
    assert pyfacelang.has_cuda() == (_C.built_with_cuda() and n > 0)


def test_has_cuda_false_without_device():
    if _C.cuda_device_count() > 0:
        pytest.skip("a CUDA device is present")
    assert pyfacelang.has_cuda() is False


def _cmake():
    exe = shutil.which("cmake")
    if exe is None:
        try:
            import cmake as cmake_pkg  # the wheel from the build requirements
        except ImportError:
            return None
        exe = str(Path(cmake_pkg.CMAKE_BIN_DIR) / "cmake")
    return exe


@pytest.mark.skipif(_cmake() is None, reason="needs cmake")
def test_cpu_only_build(tmp_path):
    """Configure and build with FACELANG_CUDA=off into a scratch folder and
    import the result in a fresh interpreter."""
    import pybind11

    cmake = _cmake()
    out = tmp_path / "lib" / "pyfacelang"
    out.mkdir(parents=True)
    build = tmp_path / "build"
    subprocess.run([cmake, "-S", str(ROOT), "-B", str(build), "-DFACELANG_CUDA=off",
                    f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
                    f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out}"], check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(build), "-j", "2"], check=True, capture_output=True)
    (out / "__init__.py").write_text("")
    code = "import pyfacelang._C as C; print(C.built_with_cuda(), C.cuda_device_count())"
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "lib", capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(tmp_path / "lib")})
    assert res.stdout.split() == ["False", "0"]
