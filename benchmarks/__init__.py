import os

# Agents the benchmarks start as root keep uid 0 (without any capability): their fixtures
# sit in private temporary directories, and the interpreter may too.
os.environ.setdefault("NITROMETER_RUN_AS_USER", "root")
