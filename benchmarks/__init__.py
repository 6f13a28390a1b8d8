"""Benchmarks and experiments of theorygrpo_jax, kept out of the library.

The scripts in scripts/ (bench.py, bench_reward.py, bench_step.py, learn_check.py,
pretrain_check.py) are thin command lines over these modules. The library never
imports this package; this package imports the library.

- machine:       the host the figures were measured on (usable cores, CPU model and ISA)
- timing:        best-of timing, interleaved batch timing, count checks
- ceilings:      the machine's measured matmul FLOP/s and memory bandwidth
- roofline:      the per-token cost model and the bounds built on it
- sampler_bench: the sampler's throughput, roofline fraction, mask overhead, memory;
                 ablation of its speed-ups; its per-step pieces
- processes:     the sampler benchmark with one pinned worker process per core
- reward_bench:  the reward's throughput, jitted JAX vs the Python reference
- step_bench:    one full GRPO step and its breakdown
- experiments:   does GRPO learn, and does pretraining help
"""
