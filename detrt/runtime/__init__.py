"""Runtime: backends, video sources and sinks, pipeline, pre/post-processing. Never imports torch."""
