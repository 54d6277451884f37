"""The user-style image sets of ``pipeline.measure.user_images``, on 500 MNIST test digits committed in tests/data.

    python -m tests.user_images OUT_DIR [--count 100] [--sets photo tight_bw ...]
    from tests.user_images import SETS, make_set, mnist_sample
    cases = make_set("tight_wb", mnist_sample(), 50, tmp_path)   # [(path, label), ...]

The digits are committed (``tests/data/mnist_sample.npz``, the first test digits) so that the fast tier
needs no download; ``--refresh-sample MNIST_NPZ`` rebuilds them from the pipeline's cache.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pipeline.measure.user_images import SETS, USER_STYLE, make_set

__all__ = ["SAMPLE", "SETS", "USER_STYLE", "make_set", "mnist_sample"]

SAMPLE = Path(__file__).with_name("data") / "mnist_sample.npz"
SAMPLE_SIZE = 500  # MNIST test digits in SAMPLE, the first ones of the test split


def mnist_sample() -> dict[str, np.ndarray]:
    """The committed MNIST test digits, in the shape of the pipeline's cache: x_test [N, 28, 28], y_test [N]."""
    with np.load(SAMPLE) as f:
        return {"x_test": f["x"], "y_test": f["y"]}


def refresh_sample(cache: Path) -> None:
    """Rewrite SAMPLE from the pipeline's MNIST cache (``artifacts/data/mnist.npz``)."""
    with np.load(cache) as f:
        x, y = f["x_test"][:SAMPLE_SIZE], f["y_test"][:SAMPLE_SIZE]
    SAMPLE.parent.mkdir(exist_ok=True)
    np.savez_compressed(SAMPLE, x=x, y=y)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.user_images", description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="folder to write one sub-folder per set into")
    p.add_argument("--count", type=int, default=100, help="images per set")
    p.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    p.add_argument("--refresh-sample", type=Path, metavar="MNIST_NPZ", help="rebuild the committed sample first")
    args = p.parse_args(argv)
    if args.refresh_sample:
        refresh_sample(args.refresh_sample)
    mnist = mnist_sample()
    for name in args.sets:
        make_set(name, mnist, args.count, args.out / name)
        print(f"{args.out / name}: {args.count} images")


if __name__ == "__main__":
    main()
