"""Ray Serve application: HTTP ingress → batched query encoder → index shard deployments."""
