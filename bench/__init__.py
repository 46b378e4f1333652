"""Benchmarks: configcenter beside etcd on one machine; `python -m bench.run [--quick]`."""
