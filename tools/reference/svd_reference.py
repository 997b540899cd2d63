#!/usr/bin/env python3
"""NumPy (LAPACK gesdd via OpenBLAS) SVD of a float32 matrix file: the reference the svd bench
compares ours with. Prints one JSON line: median seconds and the singular values."""
import argparse
import json
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--matrix', required=True, help='raw little-endian float32, row-major [m, n]')
    parser.add_argument('--m', type=int, required=True)
    parser.add_argument('--n', type=int, required=True)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    a = np.fromfile(args.matrix, dtype='<f4').reshape(args.m, args.n).astype(np.float64)
    times = []
    s = None
    for _ in range(args.repeats):
        started = time.perf_counter()
        _, s, _ = np.linalg.svd(a, full_matrices=False)
        times.append(time.perf_counter() - started)
    print(json.dumps({'numpy_version': np.__version__, 'times_s': times, 'median_s': float(np.median(times)), 's': s.tolist()}))


if __name__ == '__main__':
    main()
