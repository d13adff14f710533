"""PPO hyperparameters for rl-baselines3-zoo: ``--conf-file rec_env.zoo.ppo`` (see ``ppo.yml``)."""

from rec_env.zoo import load_hyperparams

__all__ = ["hyperparams"]

hyperparams = load_hyperparams("ppo")
