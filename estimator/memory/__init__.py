"""Memory per GPU to serve a model and to fine-tune it (see serving and training)."""
