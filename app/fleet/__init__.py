"""Fleet mode: several guard processes sharing one truth through Redis.

The rest of the app sees interfaces (``app.state.ports``), never Redis: kill switches and
run-time limits (``controls``), the state feed (``feed``), leases on polling (``leases``) and
the shared order-rate counter (``ratelimit``). ``runtime.Fleet`` wires them for one process.
"""
