"""One module per DVC stage: read inputs -> call the core -> write artifacts -> log a summary.

Each module exposes ``run(params, *, root)``.
"""
