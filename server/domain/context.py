"""What every domain service needs: the store, the coordinator, the cache and the limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.config import InstancesSection, LimitsSection
from server.coord.base import Coordinator
from server.domain.anonymous import AnonymousReads
from server.instances import InstanceRegistry
from server.published import PublishedConfigs
from server.secretbox import Keyring
from server.store.store import Store


@dataclass(frozen=True)
class DomainContext:
    """Shared collaborators of the domain services."""

    store: Store
    coordinator: Coordinator
    published: PublishedConfigs
    limits: LimitsSection
    # Who reads what (in memory); the app's own is wired in, a command's is empty.
    instances: InstanceRegistry = field(
        default_factory=lambda: InstanceRegistry("local", InstancesSection().ttl_seconds)
    )
    # Which apps the compatible APIs read without a credential (read through, briefly held).
    anonymous_reads: AnonymousReads = field(default_factory=AnonymousReads)

    @property
    def keyring(self) -> Keyring:
        """The secrets keys, shared with the published configs (which open releases)."""
        return self.published.keyring
