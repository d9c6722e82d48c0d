"""Loopback servers that speak each provider's wire format, for tests and benches.

Each server runs on 127.0.0.1 on a free port in a background thread::

    from tests.servers import OpenAIServer

    with OpenAIServer(api_key="sk-test") as server:
        model = OpenAIModel("gpt-4", api_key="sk-test", base_url=server.url)
        server.add_fault(status=429, retry_after="0.05")  # the next request
        ...

``server.url`` is the base URL the provider's clients take (OpenAI's
includes ``/v1``); ``add_fault(...)`` scripts a :class:`Fault`;
``answer_delay`` delays every answer (benchmarks); ``requests`` and
``connections`` show what arrived.
"""

from tests.servers._base import Fault, JSONResponse, LoopbackServer, Request, StreamResponse
from tests.servers.anthropic_server import AnthropicServer
from tests.servers.gemini_server import GeminiServer
from tests.servers.ollama_server import OllamaServer
from tests.servers.openai_server import OpenAIServer
from tests.servers.tgi_server import TGIServer

__all__ = [
    "AnthropicServer",
    "Fault",
    "GeminiServer",
    "JSONResponse",
    "LoopbackServer",
    "OllamaServer",
    "OpenAIServer",
    "Request",
    "StreamResponse",
    "TGIServer",
]
