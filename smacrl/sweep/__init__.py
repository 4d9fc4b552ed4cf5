"""Sweeps: the paper's grid of tasks x offline x online algorithms x seeds, run on Ray.

Why Ray core tasks and not Ray Tune: a grid here is a graph of stages that share work (one dataset and
one score model per task, one offline checkpoint per seed feeding every online algorithm), not a set
of independent trials searching a space. Ray tasks take other tasks' results as arguments, so the
graph maps one to one onto them: Ray starts a stage once its inputs exist, runs each exactly once,
retries failures, and places work on any node of a cluster. Tune's trial abstraction would need the
shared stages run outside it or duplicated per trial, and its searchers and schedulers have nothing
to decide in a fixed grid.

- :mod:`smacrl.sweep.grid`: the grid (flags or a TOML file) and its stage graph;
- :mod:`smacrl.sweep.engine`: running the graph on Ray, the lock, resume, the closing summary;
- :mod:`smacrl.sweep.progress`: the live view (terminal) or one line per finished stage (log file);
- :mod:`smacrl.sweep.cli`: ``smacrl sweep``.
"""
