"""Local checkpoints read from their headers: safetensors folders, peft adapters, GGUF files, the Hub cache."""
