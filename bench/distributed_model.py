#!/usr/bin/env python3
# ===- distributed_model.py - cost model of split layers ------------------===#
#
# Part of the atmoe project, licensed under Apache 2.0 with LLVM Exceptions.
#
# ===-----------------------------------------------------------------------===#
"""Per-layer time of a LoRA-MoE layer split over N processes (one per
machine), from this machine's measured limits and a stated network.

  python3 bench/distributed_model.py [RESULTS.json] [--gbps 100]
                                     [--latency-us 5] [--d 4096,8192]
                                     [--tokens 1,16,512] [--ranks 2,4,...]
                                     [--slots 128,16384]

RESULTS.json is bench/distributed_bench.py's output (default
bench/results/distributed.json): each process gets the 2-thread read
bandwidth and FMA peak measured there (one machine of this type per
process). The layer is SPEC §6's (one d x d f32 projection, R rank slots:
E * r = 8 * 16 = 128), with T tokens:

  compute(N)  = max(4 (d^2 + 2 R d) / N / bandwidth,
                    2 T (d^2 + 2 R d) / N / peak)
  all_reduce(S) = min(2 (N-1) a + 2 (N-1)/N S / b,      ring
                      log2(N) (a + S / b))              recursive doubling
  all_gather(S) = log2(N) a + (N-1)/N S / b             recursive doubling

with a the latency, b the bandwidth, S bytes (atmoe's gather is recursive
doubling for a power-of-two N, atmoe-collectives-to-mpi). The collectives
per call:

  tensor:N   all_reduce(4 T R)  + all_gather(4 T d)   (y)
  expert:N   all_gather(4 T d)  + all_reduce(4 T d)   (base y; partial sums)

Printed as markdown.
"""

import argparse
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def all_reduce(size, n, alpha, beta):
    ring = 2 * (n - 1) * alpha + 2 * (n - 1) / n * size / beta
    doubling = math.log2(n) * (alpha + size / beta)
    return min(ring, doubling)


def all_gather(size, n, alpha, beta):
    return math.log2(n) * alpha + (n - 1) / n * size / beta


def layer(d, slots, tokens, n, limits, alpha, beta):
    weights = d * d + 2 * slots * d
    compute = max(4 * weights / n / limits["bandwidth"],
                  2 * tokens * weights / n / limits["peak"])
    if n == 1:
        return {"compute": compute}
    y, down = 4 * tokens * d, 4 * tokens * slots
    gather = all_gather(y, n, alpha, beta)
    return {
        "compute": compute,
        "tensor": all_reduce(down, n, alpha, beta) + gather,
        "expert": all_reduce(y, n, alpha, beta) + gather,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?",
                        default=os.path.join(HERE, "results", "distributed.json"))
    parser.add_argument("--gbps", type=float, default=100.0, help="network, Gbit/s")
    parser.add_argument("--latency-us", type=float, default=5.0)
    parser.add_argument("--d", default="4096,8192")
    parser.add_argument("--tokens", default="1,16,512")
    parser.add_argument("--ranks", default="2,4,8,16,32,64")
    parser.add_argument("--slots", default="128,16384",
                        help="R = sum of the experts' ranks (SPEC §6: 128)")
    args = parser.parse_args()
    with open(args.results) as f:
        measured = json.load(f)["limits"]["2"]
    limits = {"bandwidth": measured["read_GBps"] * 1e9, "peak": measured["peak_gflops"] * 1e9}
    alpha, beta = args.latency_us * 1e-6, args.gbps / 8 * 1e9
    print("Per process: read %.1f GB/s, FMA peak %.0f GFLOP/s (%s); network %.0f Gb/s, "
          "%.0f us.\n" % (measured["read_GBps"], measured["peak_gflops"], args.results,
                          args.gbps, args.latency_us))
    ranks = [int(n) for n in args.ranks.split(",")]
    print("Speedup over one process, and in brackets the share of the call spent "
          "in collectives:\n")
    print("| d | R | T | split | " + " | ".join("N = %d" % n for n in ranks) + " |")
    print("|--:|--:|--:|---|" + "--:|" * len(ranks))
    for d in map(int, args.d.split(",")):
        for slots in map(int, args.slots.split(",")):
            for tokens in map(int, args.tokens.split(",")):
                single = layer(d, slots, tokens, 1, limits, alpha, beta)["compute"]
                for kind, label in [("tensor", "tensor"), ("expert", "expert")]:
                    cells = []
                    for n in ranks:
                        cost = layer(d, slots, tokens, n, limits, alpha, beta)
                        total = cost["compute"] + cost[kind]
                        cells.append("%.1f (%d%%)" % (single / total,
                                                      round(100 * cost[kind] / total)))
                    print("| %d | %d | %d | %s | %s |" % (d, slots, tokens, label,
                                                         " | ".join(cells)))

if __name__ == "__main__":
    main()
