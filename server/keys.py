"""Every typed application key."""

from __future__ import annotations

from aiohttp import web

from server.access_log import AccessLog
from server.api.answers import ConfigAnswers
from server.api.held_polls import HeldPolls
from server.config import Config
from server.coord.base import Coordinator
from server.domain.services import Services
from server.instances import InstanceRegistry
from server.metrics import Metrics
from server.published import PublishedConfigs
from server.store.store import Store
from server.tasks import BackgroundTasks
from server.watch.hub import Hub

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)
COORDINATOR = web.AppKey("coordinator", Coordinator)
PUBLISHED = web.AppKey("published", PublishedConfigs)
ANSWERS = web.AppKey("config_answers", ConfigAnswers)
HELD_POLLS = web.AppKey("held_polls", HeldPolls)
SERVICES = web.AppKey("services", Services)
HUB = web.AppKey("hub", Hub)
INSTANCES = web.AppKey("instances", InstanceRegistry)
METRICS = web.AppKey("metrics", Metrics)
ACCESS_LOG = web.AppKey("access_log", AccessLog)
TASKS = web.AppKey("tasks", BackgroundTasks)
