"""Models: the registry of named architectures, initialisers and the zoo."""
