"""The speed benchmark (``tools/benchmark.py``): :mod:`.inputs` makes the
batch, :mod:`.run` measures the variants of one model in one process into a
typed report, :mod:`.report` formats it; :mod:`.measure` holds the timing,
FLOP, memory and token counters."""
