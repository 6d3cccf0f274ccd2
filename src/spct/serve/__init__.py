"""Serving rewards to RL pipelines: an OpenRLHF-compatible and a native JSON endpoint over one GRM."""

from .app import ServerConfig, create_app

__all__ = ["ServerConfig", "create_app"]
