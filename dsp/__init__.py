"""Telephony DSP for tipring: numba kernels and small stateful wrappers around them.

Pure: numpy and numba only, no I/O, no trio, no logging. Everything works on 8 kHz
20 ms frames unless a function says otherwise.
"""
