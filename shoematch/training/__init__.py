"""Training loops' Ray-free parts: configs, batch preparation, steps, checkpoints."""
