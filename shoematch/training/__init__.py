"""What every training job shares, Ray-free: the common config sections, absolute paths for
workers, the step-hook contract and the `TrainJob` a model hands to the driver in
`shoematch.ray.train`."""
