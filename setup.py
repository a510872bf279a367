"""Builds pyfacelang._C through CMake + pybind11.

Environment switches:
  FACELANG_CUDA=auto|on|off   CUDA kernels (auto: when nvcc is found)
  FACELANG_CUDA_ARCHS=80;90   CUDA architectures (';' or ',' separated)
  FACELANG_NATIVE=ON|OFF      -march=native for the C++ kernels (default ON)
  FACELANG_BUILD_JOBS=N       parallel compile jobs (default: all cores)
  FACELANG_DEBUG=1            Debug build
Package metadata lives in pyproject.toml.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str, source_dir: Path):
        super().__init__(name, sources=[])
        self.source_dir = str(source_dir)


def _cmake_exe() -> str:
    # Prefer the `cmake` wheel from the build requirements, else the system one.
    try:
        import cmake  # type: ignore

        exe = Path(cmake.CMAKE_BIN_DIR) / "cmake"
        if exe.exists():
            return str(exe)
    except ImportError:
        pass
    exe = shutil.which("cmake")
    if not exe:
        sys.exit("pyfacelang: CMake >= 3.18 is required to build the extension (pip install cmake)")
    return exe


class CMakeBuild(build_ext):
    def build_extension(self, ext: CMakeExtension) -> None:
        import pybind11

        ext_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_temp = Path(self.build_temp).resolve() / ext.name
        build_temp.mkdir(parents=True, exist_ok=True)
        cfg = "Debug" if os.environ.get("FACELANG_DEBUG") else "Release"
        args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={ext_dir}",
            f"-DCMAKE_BUILD_TYPE={cfg}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DFACELANG_CUDA={os.environ.get('FACELANG_CUDA', 'auto')}",
            f"-DFACELANG_CUDA_ARCHS={os.environ.get('FACELANG_CUDA_ARCHS', '80;90')}",
            f"-DFACELANG_NATIVE={os.environ.get('FACELANG_NATIVE', 'ON')}",
        ]
        if shutil.which("ninja") or _has_ninja_wheel():
            args.append("-GNinja")
        jobs = os.environ.get("FACELANG_BUILD_JOBS", str(os.cpu_count() or 1))
        cmake = _cmake_exe()
        subprocess.run([cmake, ext.source_dir, *args], cwd=build_temp, check=True)
        subprocess.run([cmake, "--build", ".", "--config", cfg, "-j", jobs], cwd=build_temp, check=True)


def _has_ninja_wheel() -> bool:
    try:
        import ninja  # type: ignore

        bin_dir = Path(ninja.BIN_DIR)
        if (bin_dir / "ninja").exists():
            os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
            return True
    except ImportError:
        pass
    return False


setup(
    ext_modules=[CMakeExtension("pyfacelang._C", ROOT)],
    cmdclass={"build_ext": CMakeBuild},
)
