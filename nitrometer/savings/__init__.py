"""Graviton savings model, loaded only by `nitrometer savings`.

Import nothing here: every submodule but reference (standard library only, for the agent)
uses pandas or pyarrow, which the daemon must never load.
"""
