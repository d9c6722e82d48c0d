"""Provider adapters, one module per provider, on one shared HTTP transport.

``set_pool_limits`` sets the connection limits of the pooled client each base
URL gets; ``aclose_clients`` closes the pooled clients of the running event
loop at shutdown."""

from orchestrator.integrations._http import aclose_clients, set_pool_limits

__all__ = ["aclose_clients", "set_pool_limits"]
