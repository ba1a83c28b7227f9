"""sac: Soft Actor-Critic (Haarnoja et al., arXiv 1812.05905) in TensorFlow 2 / Keras 3.

`python -m sac.train` trains, `python -m sac.play` watches a checkpoint; `sac.policy.load_policy`
is the Python entry point to a trained policy.
"""
import warnings

# Sacred 0.8.7 imports pkg_resources, which setuptools deprecates with a warning on every start.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

__version__ = "0.1.0"
