"""Translation: chunking, engines (vLLM, transformers), output checks, retries and resumable shards."""
