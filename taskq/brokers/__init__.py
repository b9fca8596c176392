"""Brokers: ``get_broker()`` picks the ORM broker, the Redis broker or ``broker_class``."""

from __future__ import annotations

from django.utils.module_loading import import_string

from taskq.conf import ClusterConfig, get_config
from taskq.exceptions import ConfigurationError

from .base import Broker

__all__ = ["Broker", "get_broker"]


def get_broker(list_key: str | None = None, config: ClusterConfig | None = None) -> Broker:
    """The broker for ``list_key`` (a queue/cluster name; default: this cluster's queue)."""
    config = config or get_config()
    if config.broker_class:
        broker_class = import_string(config.broker_class)
        return broker_class(list_key=list_key, config=config)
    if config.redis or config.django_redis:
        try:
            from .redis import RedisBroker
        except ImportError as exc:  # the system check taskq.E005 says so first
            raise ConfigurationError(
                "Q_CLUSTER selects the Redis broker but the 'redis' package is not installed: "
                "pip install 'taskq[redis]'."
            ) from exc
        return RedisBroker(list_key=list_key, config=config)
    from .orm import OrmBroker

    return OrmBroker(list_key=list_key, config=config)
