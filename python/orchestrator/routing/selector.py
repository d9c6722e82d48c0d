"""``ContextualSelector``: the hyper-parameters of prompt-aware routing.

The class is the registry's built-in contextual selector and lives with the
other selectors (:mod:`orchestrator.models.selectors`); it is re-exported
here for the standalone router.
"""

from orchestrator.models.selectors import ContextualSelector, Exploration

__all__ = ["ContextualSelector", "Exploration"]
