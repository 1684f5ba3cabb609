"""The consumer runtime shared by every group.

Poll, decode, apply in one transaction with the offsets, dead-letter, run as a daemon, rebuild.
"""
