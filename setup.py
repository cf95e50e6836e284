"""Builds fusedrnn's compiled kernels with torch.utils.cpp_extension.

Environment:
  FUSEDRNN_CUDA=0|1   force the CUDA build off or on (default: on when torch has CUDA and nvcc
                      is found through CUDA_HOME)
  FUSEDRNN_NATIVE=0   do not compile the CPU kernels for this machine's instruction set
                      (-march=native), e.g. when building for another machine
"""

import json
import os
import shutil
from pathlib import Path

import torch
from setuptools import setup
from torch.utils import cpp_extension

ROOT = Path(__file__).parent
CSRC = ROOT / "csrc"


def want_cuda() -> bool:
    forced = os.environ.get("FUSEDRNN_CUDA")
    if forced == "0":
        return False
    has_nvcc = cpp_extension.CUDA_HOME is not None and shutil.which(
        "nvcc", path=os.path.join(cpp_extension.CUDA_HOME, "bin")
    )
    available = torch.version.cuda is not None and bool(has_nvcc)
    if forced == "1" and not available:
        raise RuntimeError(
            "FUSEDRNN_CUDA=1 but a CUDA build is impossible: "
            f"torch.version.cuda={torch.version.cuda}, CUDA_HOME={cpp_extension.CUDA_HOME}"
        )
    return available


def sources(pattern: str) -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in CSRC.glob(pattern))


def extension():
    # no-trapping-math lets GCC if-convert the clamps in csrc/cells/activations.h and vectorise
    cxx = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    if os.environ.get("FUSEDRNN_NATIVE", "1") != "0":
        cxx += ["-march=native", "-mprefer-vector-width=512"]
    link = ["-fopenmp"]
    # headers as dependencies: otherwise setuptools skips the rebuild after a header-only change
    depends = sources("**/*.h") + sources("**/*.cuh")
    cpu_sources = sources("*.cpp") + sources("cpu/*.cpp")
    if want_cuda():
        arch = os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
        print(f"fusedrnn: building CUDA kernels for {arch}")
        # the C++ standard is torch's choice (C++20 from torch 2.14); relaxed constexpr lets
        # kernels call the cells' constexpr layout functions
        nvcc = ["-O3", "-lineinfo", "--expt-relaxed-constexpr"]
        return cpp_extension.CUDAExtension(
            "fusedrnn._C",
            cpu_sources + sources("cuda/*.cu") + sources("cuda/*.cpp"),
            extra_compile_args={"cxx": cxx + ["-DFUSEDRNN_WITH_CUDA"], "nvcc": nvcc},
            extra_link_args=link,
            depends=depends,
        )
    print("fusedrnn: building CPU kernels only")
    return cpp_extension.CppExtension(
        "fusedrnn._C", cpu_sources, extra_compile_args={"cxx": cxx}, extra_link_args=link,
        depends=depends,
    )


class BuildExt(cpp_extension.BuildExtension):
    """Records which torch the kernels were built against, so import can say so on a mismatch."""

    def run(self):
        super().run()
        sources = self.extensions[0].sources
        info = {
            "torch_version": torch.__version__,
            "cuda": any(s.endswith(".cu") for s in sources),
        }
        package_dir = ROOT / "fusedrnn" if self.inplace else Path(self.build_lib) / "fusedrnn"
        package_dir.mkdir(parents=True, exist_ok=True)
        (package_dir / "_build_info.json").write_text(json.dumps(info) + "\n")


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExt.with_options(use_ninja=True)},
)
