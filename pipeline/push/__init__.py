"""Automatic pushes of new cases and escalations to the responsible people's group robots and webhooks.

``config`` is ``push.yaml``, ``formats`` renders WeCom / DingTalk / Feishu / JSON bodies and judges their
answers, ``outbox`` is the durable SQLite outbox, ``pusher`` routes, delivers with backoff and escalates,
``cli`` is ``minewatch push``. docs/PUSH.md.
"""
