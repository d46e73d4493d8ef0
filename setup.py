"""Only here to ship the page inside the package: a wheel gets ``frontend/`` as ``humanparse/frontend`` so an
installed ``humanparse serve`` finds it (``entries.cli.frontend_dir``). Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithPage(build_py):
    def run(self) -> None:
        super().run()
        page = Path(__file__).resolve().parent / "frontend"
        if page.is_dir() and not getattr(self, "editable_mode", False):  # editable: the checkout's page is used
            shutil.copytree(page, Path(self.build_lib) / "humanparse" / "frontend", dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithPage})
