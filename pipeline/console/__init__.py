"""The control-room console: receives alerts over MQTT, keeps the case register, serves the web page."""
