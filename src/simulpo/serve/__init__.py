"""Live serving: simulstream's WebSocket and HTTP protocols over any simulpo policy,
many sessions batched on one model, and a self-hosted page (``simulpo serve``)."""
