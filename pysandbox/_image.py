"""modal._image: where Modal defines AUTO_DOCKERIGNORE, from_dockerfile's default `ignore`
(clients import it from here)."""

from .image.dockerfile import AUTO_DOCKERIGNORE

__all__ = ["AUTO_DOCKERIGNORE"]
