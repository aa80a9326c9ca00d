"""The paper's experiments, each a function with a config dataclass and a CLI command."""
