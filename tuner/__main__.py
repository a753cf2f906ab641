"""`python -m tuner` points at the commands."""

print(
    "usage: python -m tuner.run [--study FILE] [--trials N]   tune (studies/cartpole.yaml)\n"
    "       python -m tuner.train CONFIG.yaml [--seeds K]     train one config\n"
    "see README.md"
)
