"""orchestrator: pick the right LLM for each request, fast, learning from every call."""
