#!/usr/bin/env python3
"""The rational fit of erf behind src/kernels/math.rs gelu_erf: erf(z) ~ z P(z^2) / Q(z^2) on [0, 3.92],
least squares reweighted towards minimax (Lawson). Prints the f64 and f32-evaluated maximum errors and
the coefficients for a few degrees; the kernel uses degree 5 over 5 (P has 6 coefficients, Q 6 with Q(0) = 1).

    python3 scripts/fit_erf.py
"""
import numpy as np
from math import erf
# erf(z) ~ z * P(z^2) / Q(z^2) on [0, ZMAX], Q(0)=1; iterative reweighted LS (Lawson-like) for near-minimax abs error.
ZMAX = 3.92
z = np.linspace(0, ZMAX, 20001)
y = np.array([erf(v) for v in z])
def fit(np_, nq, iters=60):
    w = np.ones_like(z)
    u = z*z
    for it in range(iters):
        # y*Q(u) = z*P(u) -> linear in coeffs: z*sum p_i u^i - y*sum_{j>=1} q_j u^j = y
        A = np.hstack([np.stack([z*u**i for i in range(np_)],1), -np.stack([y*u**j for j in range(1,nq+1)],1)])
        c,*_ = np.linalg.lstsq(A*w[:,None], y*w, rcond=None)
        p, q = c[:np_], np.concatenate([[1.0], c[np_:]])
        approx = z*np.polyval(p[::-1],u)/np.polyval(q[::-1],u)
        err = approx - y
        w = w * (np.abs(err)/np.abs(err).max() + 1e-3) ** 0.5
        w /= w.max()
    return p, q, np.abs(err).max()
for np_, nq in [(5,4),(6,4),(6,5),(7,5)]:
    p,q,e = fit(np_,nq)
    # evaluate in float32 Horner
    zz = z.astype(np.float32); uu = zz*zz
    P = np.float32(0); 
    P = np.zeros_like(zz)
    for c in p[::-1]: P = P*uu + np.float32(c)
    Q = np.zeros_like(zz)
    for c in q[::-1]: Q = Q*uu + np.float32(c)
    e32 = np.abs(zz*P/Q - y).max()
    print(np_, nq, "f64 max err %.2e  f32 %.2e" % (e, e32))
    print(" p", [float(np.float32(c)) for c in p]); print(" q", [float(np.float32(c)) for c in q])
