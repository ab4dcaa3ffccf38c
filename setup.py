"""Install with ``pip install -e .`` (or ``python setup.py develop``)."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [line.strip() for line in (here / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

setup(
    name="audio_sheet_retrieval",
    version="0.2.0",
    description="Audio--sheet music cross-modal retrieval (MSMD) in PyTorch",
    packages=find_packages(include=["audio_sheet_retrieval", "audio_sheet_retrieval.*"]),
    package_data={"audio_sheet_retrieval.data": ["*.yaml"]},
    python_requires=">=3.10",
    install_requires=requirements,
    entry_points={"console_scripts": ["asr = audio_sheet_retrieval.cli:entry"]},
)
