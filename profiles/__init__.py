"""Customer populations (``*.yaml``) and example customers (``users/*.json``) shipped as data.

Load them with :func:`rec_env.load_population` / :func:`rec_env.list_populations`.
"""
