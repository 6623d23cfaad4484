"""Hand-written numpy references for the benchmark workloads.

Each is the best plain numpy we know how to write for its network: one flat parameter array and
one flat gradient array (views for each W and b), buffers allocated once and reused with
``out=``, in-place updates. Each takes the data, the initial weights (keys as in graphnet's
``weights.npz``) and the sample order, and returns the final weights, the loss of each epoch and
the training time in seconds.
"""

from __future__ import annotations

import math
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


def w3_wide(data: Arrays, init: Arrays, epochs: int = 30, lr: float = 0.01) -> Result:
    """2048 -> 2048 relu -> 2048 relu -> 2048, MSE, plain SGD, full-batch epochs."""
    X, Y = data["x"], data["y"]
    n, dtype = len(X), X.dtype
    names = ["h1/W", "h1/b", "h2/W", "h2/b", "out/W", "out/b"]
    flat, grad, p, g = _flat(init, names, dtype)
    W1, b1, W2, b2, W3, b3 = (p[k] for k in names)
    dW1, db1, dW2, db2, dW3, db3 = (g[k] for k in names)
    A1, A2, P, dA = (np.empty((n, 2048), dtype) for _ in range(4))
    flat_error = P.reshape(-1)
    losses = []
    started = time.perf_counter()
    for _ in range(epochs):
        np.matmul(X, W1, out=A1)
        A1 += b1
        np.maximum(A1, 0, out=A1)
        np.matmul(A1, W2, out=A2)
        A2 += b2
        np.maximum(A2, 0, out=A2)
        np.matmul(A2, W3, out=P)
        P += b3
        P -= Y  # P is now the error
        losses.append(float(np.dot(flat_error, flat_error)) / P.size)
        P *= dtype.type(2.0 / P.size)  # dO
        np.matmul(A2.T, P, out=dW3)
        np.sum(P, axis=0, out=db3)
        np.matmul(P, W3.T, out=dA)
        dA *= A2 > 0
        np.matmul(A1.T, dA, out=dW2)
        np.sum(dA, axis=0, out=db2)
        np.matmul(dA, W2.T, out=A2)  # A2 is free again: reuse it for dA1
        A2 *= A1 > 0
        np.matmul(X.T, A2, out=dW1)
        np.sum(A2, axis=0, out=db1)
        grad *= lr
        flat -= grad
    return {k: v.copy() for k, v in p.items()}, losses, time.perf_counter() - started


def w4_deep(
    data: Arrays, init: Arrays, blocks: int = 100, epochs: int = 200, lr: float = 0.001
) -> Result:
    """100 residual blocks h = h + relu(h·W + b), 32 features, MSE, plain SGD, full-batch
    epochs."""
    X, Y = data["x"], data["y"]
    n, dtype = len(X), X.dtype
    names = [f"body.{k}.d/{p}" for k in range(1, blocks + 1) for p in ("W", "b")]
    flat, grad, p, g = _flat(init, names, dtype)
    W = [p[f"body.{k}.d/W"] for k in range(1, blocks + 1)]
    b = [p[f"body.{k}.d/b"] for k in range(1, blocks + 1)]
    dW = [g[f"body.{k}.d/W"] for k in range(1, blocks + 1)]
    db = [g[f"body.{k}.d/b"] for k in range(1, blocks + 1)]
    H = [X] + [np.empty((n, 32), dtype) for _ in range(blocks)]  # H[k]: input of block k+1
    R = [np.empty((n, 32), dtype) for _ in range(blocks)]  # relu outputs
    dH = np.empty((n, 32), dtype)
    dR = np.empty((n, 32), dtype)
    back = np.empty((n, 32), dtype)
    flat_error = dH.reshape(-1)
    losses = []
    started = time.perf_counter()
    for _ in range(epochs):
        for k in range(blocks):
            np.matmul(H[k], W[k], out=R[k])
            R[k] += b[k]
            np.maximum(R[k], 0, out=R[k])
            np.add(H[k], R[k], out=H[k + 1])
        np.subtract(H[blocks], Y, out=dH)
        losses.append(float(np.dot(flat_error, flat_error)) / dH.size)
        dH *= 2.0 / dH.size
        for k in range(blocks - 1, -1, -1):
            np.multiply(dH, R[k] > 0, out=dR)
            np.matmul(H[k].T, dR, out=dW[k])
            np.sum(dR, axis=0, out=db[k])
            np.matmul(dR, W[k].T, out=back)
            dH += back
        grad *= lr
        flat -= grad
    return {k: v.copy() for k, v in p.items()}, losses, time.perf_counter() - started


def _adam(
    flat: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    work: np.ndarray,
    t: int,
    lr: float = 0.001,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> None:
    """One Adam step on the flat buffer, p -= lr·m̂/(√v̂ + eps), in place."""
    m *= beta1
    m += np.multiply(grad, 1 - beta1, out=work)
    v *= beta2
    np.multiply(grad, grad, out=work)
    v += np.multiply(work, 1 - beta2, out=work)
    np.sqrt(v, out=work)
    work /= math.sqrt(1 - beta2**t)
    work += eps
    np.divide(m, work, out=work)
    flat -= np.multiply(work, lr / (1 - beta1**t), out=work)


def _first_maximum(mask: np.ndarray) -> None:
    """Keep, in each 2x2 block of a [N, H, 2, W, 2, C] mask of maxima, only the first in
    row-major order (where the gradient of a tie goes, as in torch)."""
    seen = mask[:, :, 0, :, 0].copy()
    for i, j in ((0, 1), (1, 0), (1, 1)):
        block = mask[:, :, i, :, j]
        block &= ~seen
        seen |= block


def w5_conv(data: Arrays, init: Arrays, order: np.ndarray, batch: int = 64) -> Result:
    """28x28x1 -> conv 3x3x16 same -> relu -> maxpool 2 -> conv 3x3x32 same -> relu -> maxpool 2
    -> flatten -> dense 10, softmax cross-entropy, Adam, one shuffled epoch, channels last.

    A convolution is im2col (one strided copy into a [pixels, 3·3·C] buffer) and one matmul; its
    input gradient is one batched matmul per kernel position's [pixels, C] block, added back by
    col2im (9 slice additions); pooling uses the reshape of each 2x2 block and a mask of the
    maxima (the first of a tie).
    """
    X, labels = data["x"], data["y"][:, 0].astype(np.intp)
    n, dtype = len(X), X.dtype
    names = ["c1/W", "c1/b", "c2/W", "c2/b", "logits/W", "logits/b"]
    flat, grad, p, g = _flat(init, names, dtype)
    m_, v_, work = np.zeros_like(flat), np.zeros_like(flat), np.empty_like(flat)
    W1, b1, W2, b2, W3, b3 = (p[k] for k in names)
    dW1, db1, dW2, db2, dW3, db3 = (g[k] for k in names)
    W1m, W2m = W1.reshape(9, 16), W2.reshape(144, 32)
    dW1m, dW2m = dW1.reshape(9, 16), dW2.reshape(144, 32)
    W2pos = W2.reshape(9, 16, 32).transpose(0, 2, 1)  # [position, F, C]: a view, updated in place
    B = batch
    Xp = np.zeros((B, 30, 30, 1), dtype)  # padded inputs; the border stays zero
    cols1 = np.empty((B, 28, 28, 3, 3, 1), dtype)
    Z1 = np.empty((B * 784, 16), dtype)
    P1p = np.zeros((B, 16, 16, 16), dtype)  # pooled, padded for conv 2
    cols2 = np.empty((B, 14, 14, 3, 3, 16), dtype)
    Z2 = np.empty((B * 196, 32), dtype)
    P2 = np.empty((B, 7, 7, 32), dtype)
    logits = np.empty((B, 10), dtype)
    dP2 = np.empty((B, 1568), dtype)
    dZ2 = np.empty((B, 14, 14, 32), dtype)
    dcols2 = np.empty((9, B * 196, 16), dtype)
    dP1p = np.empty((B, 16, 16, 16), dtype)
    dZ1 = np.empty((B, 28, 28, 16), dtype)
    mask1 = np.empty((B, 14, 2, 14, 2, 16), bool)
    mask2 = np.empty((B, 7, 2, 7, 2, 32), bool)
    rows_ = np.arange(B)
    window = np.lib.stride_tricks.sliding_window_view
    total = 0.0
    started = time.perf_counter()
    for t, start in enumerate(range(0, n, batch), start=1):
        index = order[start : start + batch]
        m = len(index)
        rows, y = rows_[:m], labels[index]
        Xp[:m, 1:29, 1:29] = X[index]
        # conv 1, relu, pool 1
        np.copyto(cols1[:m], window(Xp[:m], (3, 3), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3))
        c1 = cols1[:m].reshape(m * 784, 9)
        z1 = Z1[: m * 784]
        np.matmul(c1, W1m, out=z1)
        z1 += b1
        np.maximum(z1, 0, out=z1)
        a1 = z1.reshape(m, 14, 2, 14, 2, 16)
        p1 = P1p[:m, 1:15, 1:15]
        np.max(a1, axis=(2, 4), out=p1)
        np.equal(a1, p1[:, :, None, :, None], out=mask1[:m])
        _first_maximum(mask1[:m])
        # conv 2, relu, pool 2
        np.copyto(cols2[:m], window(P1p[:m], (3, 3), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3))
        c2 = cols2[:m].reshape(m * 196, 144)
        z2 = Z2[: m * 196]
        np.matmul(c2, W2m, out=z2)
        z2 += b2
        np.maximum(z2, 0, out=z2)
        a2 = z2.reshape(m, 7, 2, 7, 2, 32)
        p2 = P2[:m]
        np.max(a2, axis=(2, 4), out=p2)
        np.equal(a2, p2[:, :, None, :, None], out=mask2[:m])
        _first_maximum(mask2[:m])
        f = p2.reshape(m, 1568)
        # dense, softmax cross-entropy
        z = logits[:m]
        np.matmul(f, W3, out=z)
        z += b3
        z -= z.max(axis=1, keepdims=True)
        z -= np.log(np.exp(z).sum(axis=1, keepdims=True))  # log-softmax
        total += -float(z[rows, y].mean()) * m
        np.exp(z, out=z)
        z[rows, y] -= 1
        z /= dtype.type(m)
        # backward
        np.matmul(f.T, z, out=dW3)
        np.sum(z, axis=0, out=db3)
        dp2 = dP2[:m]
        np.matmul(z, W3.T, out=dp2)
        dz2 = dZ2[:m].reshape(m, 7, 2, 7, 2, 32)
        np.multiply(mask2[:m], dp2.reshape(m, 7, 1, 7, 1, 32), out=dz2)
        dz2 *= a2 > 0
        dz2m = dZ2[:m].reshape(m * 196, 32)
        np.matmul(c2.T, dz2m, out=dW2m)
        np.sum(dz2m, axis=0, out=db2)
        dc2 = dcols2[:, : m * 196]
        np.matmul(dz2m, W2pos, out=dc2)
        dp1p = dP1p[:m]
        dp1p.fill(0)
        for i in range(3):
            for j in range(3):
                dp1p[:, i : i + 14, j : j + 14] += dc2[3 * i + j].reshape(m, 14, 14, 16)
        dz1 = dZ1[:m].reshape(m, 14, 2, 14, 2, 16)
        np.multiply(mask1[:m], dp1p[:, 1:15, None, 1:15, None], out=dz1)
        dz1 *= a1 > 0
        dz1m = dZ1[:m].reshape(m * 784, 16)
        np.matmul(c1.T, dz1m, out=dW1m)
        np.sum(dz1m, axis=0, out=db1)
        _adam(flat, grad, m_, v_, work, t)
    return {k: v.copy() for k, v in p.items()}, [total / n], time.perf_counter() - started


REFERENCES: dict[str, Callable[..., Result]] = {
    "W1": w1_seed,
    "W2": w2_mlp,
    "W3": w3_wide,
    "W4": w4_deep,
    "W5": w5_conv,
}
