"""`python -m tuner` points at the commands."""

print("usage: python -m tuner.train CONFIG.yaml [--seeds K]   (see README.md)")
