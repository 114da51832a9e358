"""Offline evaluation (``minewatch eval``): the daemon's own stages over labelled recordings and images.

See docs/EVALUATION.md. ``hookup`` is the one place that plugs into the daemon's stages; ``boxmetrics``
(pycocotools), ``alerts`` (event metrics), ``labels`` (ground truth), ``footage``/``runner`` (clips),
``images`` (image folders), ``report`` (Markdown/JSON/PNG), ``baseline`` (the regression gate),
``crosscheck`` (Ultralytics, needs the [train] extra).
"""
