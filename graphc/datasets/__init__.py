"""Data files shipped with graphc (the MNIST 10k test set); see README.md."""
