"""Provider adapters, one module per provider, on one shared HTTP layer
(:mod:`orchestrator.integrations._http`).

``set_pool_limits`` sets the connection limits of the default pool's client
each base URL gets; ``aclose_clients`` closes the default pool's clients of
the running event loop at shutdown. A :class:`ClientPool` of your own (for
example one per registry) goes to the adapters as ``client_pool=``; an
``httpx.AsyncClient`` of your own as ``http_client=``."""

from orchestrator.integrations._http import ClientPool, aclose_clients, set_pool_limits

__all__ = ["ClientPool", "aclose_clients", "set_pool_limits"]
