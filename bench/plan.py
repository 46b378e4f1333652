"""How much load each phase makes: the full run and the tiny smoke run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one benchmark run; every loop is bounded by these."""

    name: str
    # read: wrk against GET …/config and etcd's gateway
    read_seconds: float = 5.0
    read_connections: int = 50
    # scaling: items per env (the first size is the headline read and publish figure)
    item_sizes: tuple[int, ...] = (10, 1_000, 10_000)
    value_bytes: int = 64
    # push: WebSocket subscribers / etcd watchers per run, publishes per run
    push_counts: tuple[int, ...] = (100, 1_000, 10_000)
    push_rounds: int = 20
    cluster_push_count: int = 1_000
    subscribers_per_process: int = 2_500
    watchers_per_process: int = 5_000
    watchers_per_client: int = 500
    # publish: apps published concurrently, sequential samples, concurrent rounds
    publish_apps: int = 100
    publish_sequential: int = 200
    publish_rounds: int = 5
    scaling_envs: int = 10
    scaling_sequential: int = 30
    scaling_rounds: int = 3
    # gray: subscribers that name themselves, the rule's percent, cycles of (plain publish,
    # gray release, abandon)
    gray_subscribers: int = 10_000
    gray_percent: int = 10
    gray_cycles: int = 10
    # instance reads: distinct instance ids the identified reads rotate over; runs per side
    instance_read_ids: int = 10_000
    instance_read_repeats: int = 2
    # instance churn: subscribers that connect and disconnect, for how long, held how long
    churn_subscribers: int = 1_000
    churn_seconds: float = 10.0
    churn_hold_seconds: float = 1.0
    # compatible APIs and long polls: (protocol, clients waiting) per run, publishes per run,
    # clients per load-generator process, the pause for waits to park before a publish
    longpoll_counts: tuple[tuple[str, int], ...] = (
        ("config", 10_000),
        ("apollo", 1_000),
        ("nacos", 1_000),
    )
    longpoll_rounds: int = 10
    longpolls_per_process: int = 2_500
    longpoll_settle_seconds: float = 2.0
    # scale: subscribers over 3 replicas, publishes
    scale_subscribers: int = 30_000
    scale_rounds: int = 10
    # many envs: apps x envs x items, seeded this many at once; after the restart, a pause,
    # then the scheduled refresh measured over this many intervals (the server's setting)
    many_apps: int = 500
    many_envs: int = 20
    many_items: int = 20
    many_concurrency: int = 20
    many_settle_seconds: float = 5.0
    many_refresh_interval: float = 10.0
    many_refresh_intervals: int = 3
    # bounds
    connect_timeout: float = 180.0
    delivery_timeout: float = 15.0


FULL = Plan(name="full")

QUICK = Plan(
    name="quick",
    read_seconds=1.0,
    read_connections=10,
    item_sizes=(10, 100),
    push_counts=(5, 20),
    push_rounds=3,
    cluster_push_count=5,
    subscribers_per_process=10,
    watchers_per_process=10,
    watchers_per_client=5,
    publish_apps=5,
    publish_sequential=10,
    publish_rounds=2,
    scaling_envs=2,
    scaling_sequential=4,
    scaling_rounds=1,
    gray_subscribers=20,
    gray_percent=50,
    gray_cycles=2,
    instance_read_ids=20,
    instance_read_repeats=1,
    churn_subscribers=10,
    churn_seconds=2.0,
    churn_hold_seconds=0.5,
    longpoll_counts=(("config", 5), ("apollo", 5), ("nacos", 5)),
    longpoll_rounds=2,
    longpolls_per_process=10,
    longpoll_settle_seconds=0.5,
    scale_subscribers=30,
    scale_rounds=2,
    many_apps=3,
    many_envs=2,
    many_items=5,
    many_concurrency=3,
    many_settle_seconds=0.5,
    many_refresh_interval=1.0,
    many_refresh_intervals=2,
    connect_timeout=60.0,
    delivery_timeout=10.0,
)
