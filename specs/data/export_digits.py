"""Write specs/data/digits.npz from the copy of the UCI optical digits that scikit-learn bundles.

    pip install scikit-learn && python specs/data/export_digits.py

No network: sklearn.datasets.load_digits reads the file shipped inside scikit-learn. The result
holds `x`, float32 [1797, 8, 8, 1] (the 0..16 pixel counts divided by 16), and `y`, float32
[1797, 1] (the digit, 0..9), in the data set's own order.
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

digits = load_digits()
x = (digits.images / 16.0).astype(np.float32)[..., None]
y = digits.target.astype(np.float32)[:, None]
np.savez_compressed(Path(__file__).with_name("digits.npz"), x=x, y=y)
print(f"digits.npz: x {x.shape}, y {y.shape}")
