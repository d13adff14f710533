"""A2C hyperparameters for rl-baselines3-zoo: ``--conf-file rec_env.zoo.a2c`` (see ``a2c.yml``)."""

from rec_env.zoo import load_hyperparams

__all__ = ["hyperparams"]

hyperparams = load_hyperparams("a2c")
