"""Agents behind one policy interface: SB3 models, bandits and baselines."""
