"""Hand-written numpy references for the benchmark workloads.

Each is the best plain numpy we know how to write for its network: one flat parameter array and
one flat gradient array (views for each W and b), buffers allocated once and reused with
``out=``, in-place updates. Each takes the data, the initial weights (keys as in graphnet's
``weights.npz``) and the sample order, and returns the final weights, the loss of each epoch and
the training time in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

Arrays = dict[str, np.ndarray]
Result = tuple[Arrays, list[float], float]


def _flat(
    init: Arrays, names: list[str], dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray, Arrays, Arrays]:
    """One flat parameter buffer and one flat gradient buffer, with a view per parameter."""
    total = sum(init[k].size for k in names)
    flat = np.empty(total, dtype)
    grad = np.zeros(total, dtype)
    params, grads, offset = {}, {}, 0
    for k in names:
        size, shape = init[k].size, init[k].shape
        params[k] = flat[offset : offset + size].reshape(shape)
        grads[k] = grad[offset : offset + size].reshape(shape)
        params[k][...] = init[k]
        offset += size
    return flat, grad, params, grads


def w1_seed(data: Arrays, init: Arrays, epochs: int = 2000, lr: float = 0.05) -> Result:
    """2 -> dense 5 -> relu -> dense 1, MSE, full batch, plain SGD (the notebook, vectorised)."""
    X, Y = data["x"], data["y"]
    n = len(X)
    flat, grad, p, g = _flat(init, ["hidden/W", "hidden/b", "out/W", "out/b"], X.dtype)
    W1, b1, W2, b2 = p["hidden/W"], p["hidden/b"], p["out/W"], p["out/b"]
    dW1, db1, dW2, db2 = g["hidden/W"], g["hidden/b"], g["out/W"], g["out/b"]
    H = np.empty((n, 5))
    M = np.empty((n, 5), dtype=bool)
    P = np.empty((n, 1))
    D = np.empty((n, 1))
    dA = np.empty((n, 5))
    D1 = D[:, 0]
    losses = []
    started = time.perf_counter()
    for _ in range(epochs):
        np.matmul(X, W1, out=H)
        H += b1
        np.greater(H, 0, out=M)
        H *= M
        np.matmul(H, W2, out=P)
        P += b2
        np.subtract(P, Y, out=D)
        losses.append(float(np.dot(D1, D1)) / n)
        D *= 2.0 / n
        np.matmul(H.T, D, out=dW2)
        np.sum(D, axis=0, out=db2)
        np.matmul(D, W2.T, out=dA)
        dA *= M
        np.matmul(X.T, dA, out=dW1)
        np.sum(dA, axis=0, out=db1)
        grad *= lr
        flat -= grad
    return {k: v.copy() for k, v in p.items()}, losses, time.perf_counter() - started


def w2_mlp(
    data: Arrays,
    init: Arrays,
    order: np.ndarray,
    batch: int = 128,
    lr: float = 0.01,
    momentum: float = 0.9,
) -> Result:
    """784 -> 512 relu -> 512 relu -> 10, softmax cross-entropy, SGD with momentum, one epoch."""
    X, labels = data["x"], data["y"][:, 0].astype(np.intp)
    n, dtype = len(X), X.dtype
    names = ["h1/W", "h1/b", "h2/W", "h2/b", "logits/W", "logits/b"]
    flat, grad, p, g = _flat(init, names, dtype)
    buf = np.zeros_like(flat)
    step = np.empty_like(flat)
    W1, b1, W2, b2, W3, b3 = (p[k] for k in names)
    dW1, db1, dW2, db2, dW3, db3 = (g[k] for k in names)
    xb_, A1_, A2_, Z_, dA1_, dA2_ = (
        np.empty((batch, d), dtype) for d in (784, 512, 512, 10, 512, 512)
    )
    lse_ = np.empty((batch, 1), dtype)
    E_ = np.empty((batch, 10), dtype)
    rows_ = np.arange(batch)
    total = 0.0
    started = time.perf_counter()
    for start in range(0, n, batch):
        index = order[start : start + batch]
        m = len(index)
        E = E_[:m]
        xb, A1, A2, Z, dA1, dA2, lse, rows = (
            xb_[:m],
            A1_[:m],
            A2_[:m],
            Z_[:m],
            dA1_[:m],
            dA2_[:m],
            lse_[:m],
            rows_[:m],
        )
        np.take(X, index, axis=0, out=xb)
        y = labels[index]
        np.matmul(xb, W1, out=A1)
        A1 += b1
        np.maximum(A1, 0, out=A1)
        np.matmul(A1, W2, out=A2)
        A2 += b2
        np.maximum(A2, 0, out=A2)
        np.matmul(A2, W3, out=Z)
        Z += b3
        Z -= Z.max(axis=1, keepdims=True)
        np.exp(Z, out=E)
        np.sum(E, axis=1, keepdims=True, out=lse)
        np.log(lse, out=lse)
        Z -= lse  # log-softmax
        total += -float(Z[rows, y].mean()) * m
        np.exp(Z, out=Z)  # softmax
        Z[rows, y] -= 1
        Z /= dtype.type(m)  # dZ
        np.matmul(A2.T, Z, out=dW3)
        np.sum(Z, axis=0, out=db3)
        np.matmul(Z, W3.T, out=dA2)
        dA2 *= A2 > 0
        np.matmul(A1.T, dA2, out=dW2)
        np.sum(dA2, axis=0, out=db2)
        np.matmul(dA2, W2.T, out=dA1)
        dA1 *= A1 > 0
        np.matmul(xb.T, dA1, out=dW1)
        np.sum(dA1, axis=0, out=db1)
        buf *= momentum
        buf += grad
        np.multiply(buf, lr, out=step)
        flat -= step
    return {k: v.copy() for k, v in p.items()}, [total / n], time.perf_counter() - started


def w3_wide(data: Arrays, init: Arrays, batch: int = 512, lr: float = 0.01) -> Result:
    """2048 -> 2048 relu -> 2048 relu -> 2048, MSE, plain SGD, sequential batches."""
    X, Y = data["x"], data["y"]
    n, dtype = len(X), X.dtype
    names = ["h1/W", "h1/b", "h2/W", "h2/b", "out/W", "out/b"]
    flat, grad, p, g = _flat(init, names, dtype)
    W1, b1, W2, b2, W3, b3 = (p[k] for k in names)
    dW1, db1, dW2, db2, dW3, db3 = (g[k] for k in names)
    A1, A2, P, dA = (np.empty((batch, 2048), dtype) for _ in range(4))
    total = 0.0
    started = time.perf_counter()
    for start in range(0, n, batch):
        xb, yb = X[start : start + batch], Y[start : start + batch]
        m = len(xb)
        np.matmul(xb, W1, out=A1)
        A1 += b1
        np.maximum(A1, 0, out=A1)
        np.matmul(A1, W2, out=A2)
        A2 += b2
        np.maximum(A2, 0, out=A2)
        np.matmul(A2, W3, out=P)
        P += b3
        P -= yb  # P is now the error
        flat_error = P.reshape(-1)
        total += float(np.dot(flat_error, flat_error)) / P.size * m
        P *= dtype.type(2.0 / P.size)  # dO
        np.matmul(A2.T, P, out=dW3)
        np.sum(P, axis=0, out=db3)
        np.matmul(P, W3.T, out=dA)
        dA *= A2 > 0
        np.matmul(A1.T, dA, out=dW2)
        np.sum(dA, axis=0, out=db2)
        np.matmul(dA, W2.T, out=A2)  # A2 is free again: reuse it for dA1
        A2 *= A1 > 0
        np.matmul(xb.T, A2, out=dW1)
        np.sum(A2, axis=0, out=db1)
        grad *= lr
        flat -= grad
    return {k: v.copy() for k, v in p.items()}, [total / n], time.perf_counter() - started


def w4_deep(
    data: Arrays, init: Arrays, blocks: int = 100, batch: int = 64, lr: float = 0.001
) -> Result:
    """100 residual blocks h = h + relu(h·W + b), 32 features, MSE, plain SGD, sequential batches."""
    X, Y = data["x"], data["y"]
    n, dtype = len(X), X.dtype
    names = [f"d{k}/{p}" for k in range(1, blocks + 1) for p in ("W", "b")]
    flat, grad, p, g = _flat(init, names, dtype)
    W = [p[f"d{k}/W"] for k in range(1, blocks + 1)]
    b = [p[f"d{k}/b"] for k in range(1, blocks + 1)]
    dW = [g[f"d{k}/W"] for k in range(1, blocks + 1)]
    db = [g[f"d{k}/b"] for k in range(1, blocks + 1)]
    H = [np.empty((batch, 32), dtype) for _ in range(blocks + 1)]  # H[k]: input of block k+1
    R = [np.empty((batch, 32), dtype) for _ in range(blocks)]  # relu outputs
    dH = np.empty((batch, 32), dtype)
    dR = np.empty((batch, 32), dtype)
    back = np.empty((batch, 32), dtype)
    total = 0.0
    started = time.perf_counter()
    for start in range(0, n, batch):
        H[0][...] = X[start : start + batch]
        for k in range(blocks):
            np.matmul(H[k], W[k], out=R[k])
            R[k] += b[k]
            np.maximum(R[k], 0, out=R[k])
            np.add(H[k], R[k], out=H[k + 1])
        np.subtract(H[blocks], Y[start : start + batch], out=dH)
        flat_error = dH.reshape(-1)
        total += float(np.dot(flat_error, flat_error)) / dH.size * batch
        dH *= 2.0 / dH.size
        for k in range(blocks - 1, -1, -1):
            np.multiply(dH, R[k] > 0, out=dR)
            np.matmul(H[k].T, dR, out=dW[k])
            np.sum(dR, axis=0, out=db[k])
            np.matmul(dR, W[k].T, out=back)
            dH += back
        grad *= lr
        flat -= grad
    return {k: v.copy() for k, v in p.items()}, [total / n], time.perf_counter() - started


REFERENCES: dict[str, Callable[..., Result]] = {
    "W1": w1_seed,
    "W2": w2_mlp,
    "W3": w3_wide,
    "W4": w4_deep,
}
