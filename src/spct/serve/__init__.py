"""spct's HTTP servers: the reward server (OpenRLHF-compatible and native JSON endpoints over one GRM)
and the chat server (an engine behind OpenAI's chat completions API)."""

from .app import ServerConfig, create_app
from .chat_api import create_chat_app

__all__ = ["ServerConfig", "create_app", "create_chat_app"]
