"""Development tools: `connector serve`, the embedded Redis and the local Customer.io stand-in.

Not used in production; `make run` and the tests share them.
"""
