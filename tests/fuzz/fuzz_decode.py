"""Coverage-guided fuzzing of the decode path (atheris). Any exception other than InputError is a bug.

    python tests/fuzz/fuzz_decode.py -runs=100000     # CI runs a bounded 4,000
"""

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "function"))

with atheris.instrument_imports():
    from humanparse.exceptions import InputError
    from humanparse.pipeline.imageio import decode_image


def one_input(data: bytes) -> None:
    try:
        decode_image(data, max_megapixels=1.0)
    except InputError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
