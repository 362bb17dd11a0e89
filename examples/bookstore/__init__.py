"""FastAPI REST and Connect RPC in one process (the integration guide's Option 4).

The app is :data:`examples.bookstore.app.app`; serve it with ``make demo [PORT=P]`` or
``python -m examples.bookstore [--host H] [--port P]``.
"""
