"""Every SELECT Vigil runs, by the part of the library that asks: one module per reader.

Functions here take a `Store` and plain values (times, names, lists), run ClickHouse SQL
through `Store.query`, and return rows as dicts or plain values. Nothing outside
`monitor.store` writes SQL; nothing here imports the code that uses the answers.
"""
