"""tcnn's benchmarks: headline measurements, the studies behind shipped constants, tools, figures.

Run one with ``python -m benchmarks NAME [args]`` (``python -m benchmarks`` lists them).
"""
