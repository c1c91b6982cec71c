"""Vigil's user surface: the `vigil` command line and the embedded demo stack.

It sits on top of `monitor` (the library) and `streams` (the Kafka wiring); nothing
below imports it.
"""
