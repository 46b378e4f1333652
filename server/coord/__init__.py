"""Coordinators: in-process for standalone mode, etcd for cluster mode."""

from __future__ import annotations

from server.config import Config
from server.coord.base import Coordinator
from server.coord.local import LocalCoordinator


def create_coordinator(config: Config, advertise_url: str) -> Coordinator:
    """The coordinator the config asks for."""
    if config.standalone:
        return LocalCoordinator()
    from server.coord.etcd import EtcdCoordinator

    return EtcdCoordinator(config.etcd, advertise_url)
