"""Power-use anomalies: utility meter readings → hourly series → robust week-profile baseline → anomalies.

``io`` parses the utility's CSV files, ``series`` turns interval readings into hourly series, ``detect``
finds the four kinds of anomaly, ``synth`` generates realistic load curves for tests and the evaluation,
``stream`` accepts the same rows over HTTP POST or MQTT, ``cli`` is ``minewatch power``.
"""
