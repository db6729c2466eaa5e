# Builds the C core (native/build.py) into the package; everything else is in pyproject.toml.
# The wheel is tagged cp39-abi3-<platform>: the core's extension uses only CPython's stable ABI
# of 3.9 (and the ABI-mode library beside it no Python at all), so one wheel per architecture
# serves every CPython from 3.9 on.
import importlib.util
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def native_build():
    spec = importlib.util.spec_from_file_location("nitrometer_native_build",
                                                  ROOT / "native" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildCore(build_ext):
    def run(self):
        super().run()
        in_source = self.inplace or getattr(self, "editable_mode", False)
        target = ROOT / "nitrometer" if in_source else Path(self.build_lib) / "nitrometer"
        self._core_outputs = [str(p) for p in native_build().build(target)]

    def get_outputs(self):
        return super().get_outputs() + getattr(self, "_core_outputs", [])


class StableAbiWheel(bdist_wheel):
    def get_tag(self):
        return ("cp39", "abi3", super().get_tag()[2])


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True  # a platform wheel, and build_ext runs


setup(distclass=BinaryDistribution,
      cmdclass={"build_ext": BuildCore, "bdist_wheel": StableAbiWheel})
