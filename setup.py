"""Drives CMake (the one build description) to build alpa_torch._C.

Build in place for development:  pip install --no-build-isolation -e .
Environment knobs: ALPA_BUILD_DIR (default ./build), ALPA_BUILD_JOBS,
ALPA_BUILD_TESTS (default 1: also builds the gtest binary).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = Path(os.environ.get("ALPA_BUILD_DIR", ROOT / "build")).resolve()
        jobs = os.environ.get("ALPA_BUILD_JOBS", str(os.cpu_count() or 2))
        tests = os.environ.get("ALPA_BUILD_TESTS", "1")
        generator = ["-G", "Ninja"] if _has_ninja() else []
        import torch.utils
        torch_cmake = torch.utils.cmake_prefix_path
        subprocess.check_call([
            "cmake", "-S", str(ROOT), "-B", str(build_dir), *generator,
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DALPA_BUILD_PYTHON=ON",
            f"-DCMAKE_PREFIX_PATH={torch_cmake}",
            f"-DALPA_BUILD_TESTS={'ON' if tests == '1' else 'OFF'}",
            "-DCMAKE_BUILD_TYPE=Release",
        ])
        subprocess.check_call(["cmake", "--build", str(build_dir), "-j", jobs])
        # CMake writes the module into ROOT/alpa_torch; a wheel build wants it
        # in its own staging folder.
        built = ROOT / "alpa_torch" / Path(self.get_ext_filename(ext.name)).name
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        if built.resolve() != target:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(built, target)
            # the executor's module and the LibTorch runtime it links
            runtime = built.name.replace("_C", "_runtime", 1)
            if (ROOT / "alpa_torch" / runtime).exists():
                shutil.copyfile(ROOT / "alpa_torch" / runtime, target.parent / runtime)
            lib = ROOT / "alpa_torch" / "lib"
            if lib.exists():
                shutil.copytree(lib, target.parent / "lib", dirs_exist_ok=True)


def _has_ninja():
    from shutil import which
    return which("ninja") is not None


setup(
    name="alpa_torch",
    version="0.1.0",
    description="Alpa's automatic inter- and intra-operator parallelism for PyTorch",
    packages=find_packages(include=["alpa_torch", "alpa_torch.*"]),
    ext_modules=[CMakeExtension("alpa_torch._C")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.10",
    install_requires=["torch>=2.6,<2.16"],
    extras_require={"test": ["pytest", "transformers>=4.45"]},
    entry_points={
        "console_scripts": ["alpa-torch = alpa_torch.cli:main"],
        # torch.compile(model, backend="alpa") finds the backend here, so the
        # user need not import alpa_torch first
        "torch_dynamo_backends": ["alpa = alpa_torch.backend:alpa_backend"],
    },
    zip_safe=False,
)
