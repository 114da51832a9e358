"""Tower smoke: change against the view's own history, confirmed over real time (docs/SMOKE.md).

``config`` (the ``smoke:`` section), ``watcher`` (per view: history, change, candidates, confirmation),
``stage`` (what the Analyzer runs per camera). Import the submodules directly (pipeline.config imports
``pipeline.smoke.config``, so this package imports nothing itself).
"""
