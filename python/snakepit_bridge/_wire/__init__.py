"""Generated wire modules (from messages/bridge.proto). Do not edit by hand.

Regenerate with ``scripts/gen-python-stubs.sh``; ``tests/python/test_stubs.py`` fails when the
committed modules differ from what the script produces.
"""
