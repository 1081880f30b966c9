"""Benchmark stage (host side): send a deployable model to a device, run the harness there, keep the JSON."""
