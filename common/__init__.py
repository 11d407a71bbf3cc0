"""The library, in eight layer packages (lowest first): core, geometry, datasets, model, evaluation, training, video,
cli. docs/ARCHITECTURE.md is the map."""
